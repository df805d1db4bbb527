"""A user's own PyTorch training function, written the way Ray Train's docs show, unchanged for the
orchestrator: it reports once per epoch, with the samples this worker processed under ``num_samples``.

Swept by jobs/user-functions.yaml (``entrypoint: jobs.examples.torch_user:train_func``).
"""

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ray.train
import ray.train.torch


def train_func(config):
    digits = load_digits()
    data = TensorDataset(
        torch.tensor(digits.data / 16.0, dtype=torch.float32), torch.tensor(digits.target, dtype=torch.long)
    )
    loader = DataLoader(data, batch_size=config.get("batch_size", 32), shuffle=True)
    loader = ray.train.torch.prepare_data_loader(loader)

    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    model = ray.train.torch.prepare_model(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.get("lr", 0.05), momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    for epoch in range(config.get("epochs", 4)):
        if ray.train.get_context().get_world_size() > 1:
            loader.sampler.set_epoch(epoch)
        seen, losses = 0, []
        for images, labels in loader:
            loss = loss_fn(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(images)
            losses.append(loss.item())
        ray.train.report({"epoch": epoch, "loss": float(np.mean(losses)), "num_samples": seen})
