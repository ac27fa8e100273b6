#!/usr/bin/python3
"""EmotionalDAN in Python PyTorch: the reference edan is measured against.

The same architecture as libedan/src/model.cpp, written as a PyTorch user
would (eval-mode modules, BatchNorm not folded, NCHW), loading the SAME
weights: an edan model file is a TorchScript archive that torch.jit.load
reads, with the metadata JSON in its `edan_meta` attribute.

  reference.py check MODEL PREDICT_RAW [--n N] [--seed S]
      Runs N random faces through this reference and through edan
      (tests/fixtures/predict-raw, Predictor::predict), prints one JSON
      object with the largest differences, exits 0 when probs and landmarks
      agree within 1e-4 (probabilities; landmarks in pixels), else 1.
  reference.py predict MODEL [FILE] [--batch B] [--threads T]
      edan-predict's work on pre-cropped faces: JSON Lines records with a
      "crop" (a binary PGM, or any format Pillow reads, of the model's size)
      in, records with "pred" out (probs rounded to 6 decimals, landmarks to
      0.01 px, in the crop's pixels).
  reference.py flops MODEL
      FLOPs of the convolutions of one face through every stage (JSON).

bench/ only: edan itself never runs Python.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn as nn
import torch.nn.functional as F

CONV_NAMES = ["conv1a", "conv1b", "conv2a", "conv2b", "conv3a", "conv3b", "conv4a", "conv4b"]
LANDMARKS = 68


class DanStage(nn.Module):
    def __init__(self, cfg, index):
        super().__init__()
        s, widths, fc = cfg["size"], cfg["widths"], cfg["fc"]
        cin = 1
        if index > 0:
            cin = 3
            self.input_bn = nn.BatchNorm2d(3)
            self.feature_dense = nn.Linear(fc, (s // 2) * (s // 2))
        for i, name in enumerate(CONV_NAMES):
            out = widths[i // 2]
            setattr(self, name, nn.Conv2d(cin, out, 3, padding=1, bias=False))
            setattr(self, "bn" + name[4:], nn.BatchNorm2d(out))
            cin = out
        self.dropout = nn.Dropout(cfg["dropout"])
        side = s // 16
        self.fc1 = nn.Linear(widths[3] * side * side, fc)
        self.landmarks = nn.Linear(fc, 2 * LANDMARKS)
        self.emotion = nn.Linear(fc, len(cfg["labels"]))
        self.size = s

    def forward(self, x):
        if hasattr(self, "input_bn"):
            x = self.input_bn(x)
        for i, name in enumerate(CONV_NAMES):
            x = F.relu(getattr(self, "bn" + name[4:])(getattr(self, name)(x)))
            if i % 2 == 1:
                x = self.dropout(F.max_pool2d(x, 2))
        x = F.relu(self.fc1(x.flatten(1)))
        return self.landmarks(x).view(-1, LANDMARKS, 2), x, self.emotion(x)

    def feature_image(self, features):
        h = self.size // 2
        f = F.relu(self.feature_dense(features)).view(-1, 1, h, h)
        return f.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


def estimate_transforms(src, dst):
    dst = dst.unsqueeze(0).expand_as(src)
    cf, ct = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    f, d = src - cf, dst - ct
    fx, fy, dx, dy = f[..., 0], f[..., 1], d[..., 0], d[..., 1]
    den = (fx * fx + fy * fy).sum(1)
    a = (fx * dx + fy * dy).sum(1) / den
    b = (fx * dy - fy * dx).sum(1) / den
    cfx, cfy, ctx, cty = cf[:, 0, 0], cf[:, 0, 1], ct[:, 0, 0], ct[:, 0, 1]
    tx = ctx - (a * cfx - b * cfy)
    ty = cty - (b * cfx + a * cfy)
    return torch.stack([torch.stack([a, -b, tx], 1), torch.stack([b, a, ty], 1)], 1)


def apply_transforms(t, pts):
    return torch.matmul(pts, t[:, :, :2].transpose(1, 2)) + t[:, :, 2].unsqueeze(1)


def invert_transforms(t):
    a, b, c, d = t[:, 0, 0], t[:, 0, 1], t[:, 1, 0], t[:, 1, 1]
    tx, ty = t[:, 0, 2], t[:, 1, 2]
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    return torch.stack([torch.stack([ia, ib, -(ia * tx + ib * ty)], 1),
                        torch.stack([ic, id_, -(ic * tx + id_ * ty)], 1)], 1)


def warp_images(images, t):
    n, _, h, w = images.shape
    ys, xs = torch.arange(h, dtype=images.dtype), torch.arange(w, dtype=images.dtype)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).flip(-1).reshape(1, h * w, 2)
    src = apply_transforms(invert_transforms(t), grid.expand(n, -1, -1))
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], dtype=images.dtype)
    norm = (src * scale - 1).view(n, h, w, 2)
    return F.grid_sample(images, norm, mode="bilinear", padding_mode="zeros", align_corners=True)


def landmark_heatmaps(landmarks, size, half=8):
    n, k = landmarks.shape[:2]
    r = torch.arange(-half, half + 1, dtype=landmarks.dtype)
    offsets = torch.stack(torch.meshgrid(r, r, indexing="ij"), -1).flip(-1).reshape(1, 1, -1, 2)
    lm = landmarks.unsqueeze(2)
    pix = lm.round() + offsets
    value = 1.0 / (1.0 + (pix - lm).norm(2, dim=-1))
    px, py = pix[..., 0], pix[..., 1]
    inside = (px >= 0) & (px <= size - 1) & (py >= 0) & (py <= size - 1)
    spare = size * size
    index = (py * size + px).long().masked_fill(~inside, spare)
    value = value.masked_fill(~inside, 0)
    heat = torch.zeros(n, spare + 1, dtype=landmarks.dtype)
    for j in range(k):
        idx, val = index[:, j], value[:, j]
        heat.scatter_(1, idx, torch.maximum(heat.gather(1, idx), val))
    return heat[:, :spare].reshape(n, 1, size, size)


class EmotionalDan(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("mean_shape", torch.zeros(LANDMARKS, 2))
        for i in range(cfg["stages"]):
            setattr(self, "stage%d" % (i + 1), DanStage(cfg, i))

    def forward(self, images):
        n = images.shape[0]
        mean = self.mean_shape
        landmarks = features = logits = None
        for i in range(self.cfg["stages"]):
            stage = getattr(self, "stage%d" % (i + 1))
            if i == 0:
                offsets, features, logits = stage(images)
                landmarks = mean.unsqueeze(0).expand(n, -1, -1) + offsets
                continue
            t = estimate_transforms(landmarks, mean)
            aligned = apply_transforms(t, landmarks)
            x = torch.cat([warp_images(images, t), landmark_heatmaps(aligned, self.cfg["size"]),
                           stage.feature_image(features)], 1)
            offsets, features, logits = stage(x)
            landmarks = apply_transforms(invert_transforms(t), aligned + offsets)
        return torch.softmax(logits, 1), landmarks


def load(path):
    archive = torch.jit.load(path, map_location="cpu")
    meta = json.loads(archive.edan_meta)
    model = EmotionalDan(meta["config"])
    model.load_state_dict(archive.state_dict(), strict=True)
    model.eval()
    return model, meta


def blur(images, sigma):
    """Gaussian blur as edan's blur_images: radius ceil(3 sigma), reflected edges."""
    if not sigma > 0:
        return images
    r = int(math.ceil(3 * sigma))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=images.dtype) ** 2 / (2 * sigma * sigma))
    k = k / k.sum()
    pw, ph = min(r, images.shape[3] - 1), min(r, images.shape[2] - 1)
    kw, kh = k[r - pw:r + pw + 1], k[r - ph:r + ph + 1]
    kw, kh = kw / kw.sum(), kh / kh.sum()
    y = F.pad(images, (pw, pw, ph, ph), mode="reflect")
    y = F.conv2d(y, kw.view(1, 1, 1, -1))
    return F.conv2d(y, kh.view(1, 1, -1, 1))


def normalise(pixels, meta):
    pixels = blur(pixels, meta.get("input_blur", 0))
    if meta.get("input_norm", "dataset") == "image":
        mean = pixels.mean((1, 2, 3), keepdim=True)
        std = pixels.std((1, 2, 3), unbiased=False, keepdim=True).clamp_min(1.0 / 255)
        return (pixels - mean) / std
    return (pixels - meta["input_mean"]) / meta["input_std"]


def conv_flops(cfg):
    """Multiply-adds x 2 of the 3x3 convolutions of one face, all stages."""
    total = 0
    for stage in range(cfg["stages"]):
        cin, side = (1 if stage == 0 else 3), cfg["size"]
        for i in range(8):
            out = cfg["widths"][i // 2]
            total += 2 * 9 * cin * out * side * side
            cin = out
            if i % 2 == 1:
                side //= 2
    return total


def cmd_check(args):
    model, meta = load(args.model)
    s = meta["config"]["size"]
    gen = torch.Generator().manual_seed(args.seed)
    # Smooth faces (a random low-resolution image, upsampled) plus noise:
    # landmarks of random-weight models stay inside the frame more often
    # than with pure noise.
    low = torch.rand(args.n, 1, 6, 6, generator=gen)
    faces = F.interpolate(low, size=(s, s), mode="bilinear", align_corners=False)
    faces = (faces * 200 + torch.rand(args.n, 1, s, s, generator=gen) * 55).clamp(0, 255)
    u8 = faces.to(torch.uint8)
    with tempfile.NamedTemporaryFile(suffix=".u8") as raw:
        raw.write(u8.numpy().tobytes())
        raw.flush()
        out = subprocess.run([args.predict_raw, args.model, raw.name], check=True,
                             capture_output=True, text=True).stdout
    edan = [json.loads(line) for line in out.splitlines()]
    with torch.no_grad():
        probs, landmarks = model(normalise(u8.float() / 255.0, meta))
    e_probs = torch.tensor([r["probs"] for r in edan], dtype=torch.float64)
    e_lm = torch.tensor([r["landmarks"] for r in edan], dtype=torch.float64)
    dp = (e_probs - probs.double()).abs().max().item()
    dl = (e_lm - landmarks.double()).abs().max().item()
    result = {"model": meta["config"], "faces": args.n,
              "max_abs_diff_probs": dp, "max_abs_diff_landmarks_px": dl, "tolerance": 1e-4,
              "same_labels": bool((e_probs.argmax(1) == probs.argmax(1)).all().item())}
    result["ok"] = dp <= 1e-4 and dl <= 1e-4
    print(json.dumps(result))
    return 0 if result["ok"] else 1


def read_crop(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"P5":
        fields, pos = [], 2
        while len(fields) < 3:
            while data[pos:pos + 1].isspace():
                pos += 1
            if data[pos:pos + 1] == b"#":
                pos = data.index(b"\n", pos)
                continue
            end = pos
            while not data[end:end + 1].isspace():
                end += 1
            fields.append(int(data[pos:end]))
            pos = end
        w, h, _ = fields
        pixels = torch.frombuffer(bytearray(data[pos + 1:pos + 1 + w * h]), dtype=torch.uint8)
        return pixels.view(h, w)
    from PIL import Image  # only for crops that are not PGM
    img = Image.open(path).convert("L")
    return torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(img.height, img.width)


def cmd_predict(args):
    model, meta = load(args.model)
    s = meta["config"]["size"]
    labels = meta["config"]["labels"]
    out = sys.stdout
    src = open(args.file) if args.file not in (None, "-") else sys.stdin

    def flush(batch):
        pixels = torch.stack([read_crop(r["crop"]) for r in batch]).unsqueeze(1).float() / 255.0
        side = pixels.shape[-1]
        with torch.no_grad():
            probs, landmarks = model(normalise(pixels, meta))
        landmarks = landmarks * (side / s)
        for r, p, lm in zip(batch, probs.tolist(), landmarks.tolist()):
            r["pred"] = {"label": labels[max(range(len(p)), key=p.__getitem__)],
                         "probs": {l: round(v, 6) for l, v in zip(labels, p)},
                         "landmarks": [[round(x, 2), round(y, 2)] for x, y in lm]}
            out.write(json.dumps(r, separators=(",", ":")) + "\n")
        out.flush()

    batch = []
    for line in src:
        if line.strip():
            batch.append(json.loads(line))
            if len(batch) == args.batch:
                flush(batch)
                batch = []
    if batch:
        flush(batch)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("model")
    c.add_argument("predict_raw")
    c.add_argument("--n", type=int, default=8)
    c.add_argument("--seed", type=int, default=1)
    r = sub.add_parser("predict")
    r.add_argument("model")
    r.add_argument("file", nargs="?")
    r.add_argument("--batch", type=int, default=32)
    f = sub.add_parser("flops")
    f.add_argument("model")
    for q in (c, r, f):
        # As edan: every core this process may run on.
        q.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.cmd == "check":
        return cmd_check(args)
    if args.cmd == "predict":
        return cmd_predict(args)
    model, meta = load(args.model)
    print(json.dumps({"conv_flops_per_face": conv_flops(meta["config"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
