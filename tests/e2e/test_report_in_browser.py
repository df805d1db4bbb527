"""The HTML report in a real browser (headless Chromium, Debian's `chromium`): at 1280 and 800 px wide the page
itself never scrolls sideways; wide tables scroll inside their own box. Skipped where no Chromium is
installed (`apt-get install -y chromium`)."""

import re
import shutil
import subprocess
import tempfile

import pytest

from orchestrator import report
from orchestrator.measuring import results
from tests.unit.test_report import record
from tests.unit.test_trustworthy_numbers import user_record

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROBE = ('<script>document.body.insertAdjacentHTML("beforeend", "<p id=probe>WIDTH " + '
         'document.documentElement.scrollWidth + " " + window.innerWidth + "</p>")</script></body>')


def page_width(html_path, width: int) -> tuple[int, int]:
    probe = html_path.with_name("probe.html")
    probe.write_text(html_path.read_text().replace("</body>", PROBE))
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tempfile.mkdtemp()}",
         f"--window-size={width},2000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120)
    found = re.search(r"WIDTH (\d+) (\d+)", done.stdout)
    assert found, done.stdout[-500:] + done.stderr[-500:]
    return int(found.group(1)), int(found.group(2))


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed")
@pytest.mark.parametrize("width", [1280, 800])
def test_the_page_never_scrolls_sideways(tmp_path, width):
    for n, rate in ((1, 3000.0), (2, 5000.0), (4, 7000.0)):
        results.append(tmp_path, user_record("torch", "ddp", n, 0, rate, True,
                                             "a.very.long.package.name.of_a_users_training_module:train_func"))
    for n in (1, 2, 4):
        results.append(tmp_path, {**record("tensorflow", "multi_worker_mirrored", n, 0, 900.0 * n ** 0.5),
                                  "execution": "compiled"})
    results.append(tmp_path, record("torch", "ddp", 8, 0, 0, status="failed"))
    report.render(tmp_path)
    scroll_width, viewport = page_width(tmp_path / "report.html", width)
    assert scroll_width <= viewport, (scroll_width, viewport)
