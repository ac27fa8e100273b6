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
  reference.py train [--size S] [--widths W1,W2,W3,W4] [--stages N] [--fc F]
                     [--classes C] [--dropout P] [--batch B] [--steps N]
                     [--warmup K] [--landmarks F] [--threads T]
      edan-train's step of stage 1 on random, fixed inputs: times N steps
      after K warm-up steps, prints one JSON object (images/s, and which
      parts of edan's step it includes and which not). Defaults: the
      default model's recipe (examples/default-model/Makefile).

bench/ only: edan itself never runs Python.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

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


def equalize(pixels):
    """Per-image histogram equalisation as edan's equalize_histograms (OpenCV's formula)."""
    n = pixels.shape[0]
    q = (pixels.reshape(n, -1) * 255).round().clamp(0, 255).long()
    hist = torch.zeros(n, 256, dtype=pixels.dtype).scatter_add_(1, q, torch.ones_like(q, dtype=pixels.dtype))
    cdf = hist.cumsum(1)
    c0 = cdf.masked_fill(hist == 0, float("inf")).min(1, keepdim=True).values
    lut = ((cdf - c0) * 255 / (q.shape[1] - c0).clamp_min(1)).round().clamp(0, 255) / 255
    return lut.gather(1, q).reshape(pixels.shape)


def normalise(pixels, meta):
    norm = meta.get("input_norm", "dataset")
    if norm == "histeq":
        pixels = equalize(pixels)
    if norm in ("image", "histeq"):
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


# --- the training step (train) --------------------------------------------------

CLASS_SETS = {8: ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"],
              7: ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"],
              3: ["negative", "positive", "neutral"]}


def face_shape(size):
    """68 distinct points around the crop's centre (bench/run.sh's records use the same)."""
    k = torch.arange(LANDMARKS, dtype=torch.float32) * (2 * 3.141592653589793 / LANDMARKS)
    return torch.stack([size / 2 + size / 3 * torch.cos(k), size / 2 + size * 3 / 8 * torch.sin(k)], 1)


def sample_nme(pred, truth):
    """edan's sample_nme (eye centres: mean of points 36-41 and 42-47)."""
    d = (truth[:, 36:42].mean(1) - truth[:, 42:48].mean(1)).norm(2, dim=-1)
    return (pred - truth).norm(2, dim=-1).mean(1) / d


def joint_loss(pred, truth, has_landmarks, logits, targets, alpha, beta):
    """edan's joint_loss with soft targets (the form edan-train always uses):
    alpha * NME over the samples with landmarks + beta * CE over the labelled ones."""
    lm_idx = has_landmarks.nonzero().squeeze(1)
    lab_idx = (targets.sum(1) > 0).nonzero().squeeze(1)
    zero = torch.zeros((), dtype=logits.dtype)
    nme = sample_nme(pred.index_select(0, lm_idx), truth.index_select(0, lm_idx)).mean() \
        if lm_idx.numel() > 0 else zero
    if lab_idx.numel() > 0:
        log_p = torch.log_softmax(logits.index_select(0, lab_idx), 1)
        ce = -(targets.index_select(0, lab_idx) * log_p).sum(1).mean()
    else:
        ce = zero
    return alpha * nme + beta * ce


def triangular_lr(iteration, base, top, step):
    cycle = (1 + iteration // (2 * step))
    x = abs(iteration / step - 2 * cycle + 1)
    return base + (top - base) * max(0.0, 1 - x)


def cmd_train(args):
    widths = [int(w) for w in args.widths.split(",")]
    if len(widths) != 4 or args.size % 16 != 0 or args.classes not in CLASS_SETS:
        raise SystemExit("reference.py train: need 4 widths, a size multiple of 16, 3/7/8 classes")
    cfg = {"size": args.size, "widths": widths, "stages": args.stages, "fc": args.fc,
           "dropout": args.dropout, "labels": CLASS_SETS[args.classes]}
    torch.manual_seed(args.seed)
    model = EmotionalDan(cfg)
    s, b = args.size, args.batch
    model.mean_shape.copy_(face_shape(s))
    # Stage 1 trains; the later stages exist (as in edan's model) but are frozen.
    stage = model.stage1
    for p in model.parameters():
        p.requires_grad_(False)
    for p in stage.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(stage.parameters(), lr=args.lr_base)

    # Random but fixed inputs: histeq'd faces are, per image, zero mean and unit std.
    gen = torch.Generator().manual_seed(args.seed)
    images = torch.randn(b, 1, s, s, generator=gen)
    images = (images - images.mean((1, 2, 3), keepdim=True)) / images.std((1, 2, 3), unbiased=False, keepdim=True)
    with_lm = int(round(args.landmarks * b))
    has_landmarks = torch.zeros(b, dtype=torch.bool)
    has_landmarks[:with_lm] = True
    truth = torch.zeros(b, LANDMARKS, 2)
    truth[:with_lm] = face_shape(s) + torch.randn(with_lm, LANDMARKS, 2, generator=gen)
    labels = torch.randint(0, args.classes, (b,), generator=gen)
    targets = F.one_hot(labels, args.classes).float()
    mean = model.mean_shape.unsqueeze(0)

    def step(i):
        model.train()
        for j in range(2, cfg["stages"] + 1):
            getattr(model, "stage%d" % j).eval()
        for g in optimizer.param_groups:
            g["lr"] = triangular_lr(i, args.lr_base, args.lr_max, args.lr_step)
        offsets, _, logits = stage(images)
        loss = joint_loss(mean + offsets, truth, has_landmarks, logits, targets, args.alpha, args.beta)
        if not torch.isfinite(loss).item():
            raise SystemExit("reference.py train: the loss is not finite at step %d" % i)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    for i in range(args.warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(args.warmup, args.warmup + args.steps):
        loss = step(i)
    seconds = time.perf_counter() - t0
    print(json.dumps({
        "config": {k: v for k, v in cfg.items() if k != "labels"} | {"classes": args.classes},
        "batch": b, "with_landmarks": with_lm, "optimizer": "adam", "alpha": args.alpha, "beta": args.beta,
        "threads": torch.get_num_threads(), "warmup_steps": args.warmup, "steps": args.steps,
        "seconds": round(seconds, 4), "images_per_s": round(b * args.steps / seconds, 2),
        "last_loss": round(loss, 4), "torch": torch.__version__,
        "includes": "stage 1 forward in train mode (BatchNorm batch statistics, dropout), the joint "
                    "loss (NME of the samples with landmarks, soft-target cross-entropy), the "
                    "finiteness check of the loss, backward, Adam step, the cyclical learning rate",
        "excludes": "what edan's step does besides: drawing and applying augmentation, histogram "
                    "equalisation and batch assembly (edan does these in a second thread, "
                    "overlapping the step), the per-step reseed and the running metrics (a few "
                    ".item() calls); inputs here are fixed tensors already normalised"}))
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
    t = sub.add_parser("train")
    t.add_argument("--size", type=int, default=48)
    t.add_argument("--widths", default="32,64,128,256")
    t.add_argument("--stages", type=int, default=2)
    t.add_argument("--fc", type=int, default=256)
    t.add_argument("--classes", type=int, default=8)
    t.add_argument("--dropout", type=float, default=0.25)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--steps", type=int, default=8)
    t.add_argument("--warmup", type=int, default=2)
    t.add_argument("--landmarks", type=float, default=0.25, help="share of the batch with landmarks")
    t.add_argument("--lr-base", type=float, default=1e-4)
    t.add_argument("--lr-max", type=float, default=1e-3)
    t.add_argument("--lr-step", type=int, default=1000)
    t.add_argument("--alpha", type=float, default=0.4)
    t.add_argument("--beta", type=float, default=0.6)
    t.add_argument("--seed", type=int, default=1)
    for q in (c, r, f, t):
        # As edan: every core this process may run on.
        q.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.cmd == "check":
        return cmd_check(args)
    if args.cmd == "predict":
        return cmd_predict(args)
    if args.cmd == "train":
        return cmd_train(args)
    model, meta = load(args.model)
    print(json.dumps({"conv_flops_per_face": conv_flops(meta["config"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
