"""Linear probes for many heads at once: one batched multinomial logistic regression in torch.

Why hand-written: the POS paper trains one probe per [layer, head] (128 on TinyStories-1M).
scikit-learn fits them one at a time on the CPU (33 s of a 34 s dry run); here every probe is
one slice of a batched parameter tensor and all are fitted together, on the model's device, by
Newton's method on each (independent) objective. The objective is scikit-learn's
`LogisticRegression(C=1.0)` (multinomial cross-entropy summed over samples + ||W||^2 / 2C, the
intercept unpenalised) on standardised features; tests/test_probes.py keeps scikit-learn as the
reference (per-tag F1 within 0.01 on every head).
"""

from __future__ import annotations

import torch


def standardise(x_train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Scale every probe's features to mean 0, std 1 on its training set: [P, N, d] each."""
    mean = x_train.mean(1, keepdim=True)
    std = x_train.std(1, unbiased=False, keepdim=True).clamp_min(1e-12)
    return [(x - mean) / std for x in (x_train, *others)]


def _loss(xt, theta, onehot, C):
    """Per probe: summed cross-entropy + ||W||^2 / 2C (intercept, the last column, unpenalised)."""
    logits = torch.bmm(xt, theta.transpose(1, 2))
    ce = -(torch.log_softmax(logits, -1) * onehot).sum((1, 2))
    return ce + (theta[..., :-1] ** 2).sum((1, 2)) / (2 * C)


def fit_multinomial(x: torch.Tensor, y: torch.Tensor, n_classes: int, C: float = 1.0, max_iter: int = 100,
                    tol: float = 1e-6, group: int = 32, hessian_sample: int | None = 1024,
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights [P, K, d] and intercepts [P, K] of P independent multinomial probes on x [P, N, d]
    with shared labels y [N] (ints < n_classes), by Newton steps with an Armijo line search, in
    float64, `group` probes at a time to bound memory. The probes' (d + 1) K parameters are few
    (90 on TinyStories-1M), so the exact Hessian is cheap and ~8 steps converge to scikit-learn's
    optimum. Why float64 and a per-probe stop: in float32 the gradient never reaches `tol` and a
    loss comparison never improves near the optimum, so every probe ran all steps, each with 20
    halvings (the 1621-3303 loss evaluations that made the POS probes take minutes).

    Sub-sampled Hessian (Byrd et al. 2011): the exact Hessian costs N (d+1)^2 K^2 per probe and
    step (90 x 90 x 7.5k on the 1M model: most of the fit); with `hessian_sample` it is estimated
    on that many training tokens (fixed, seeded) and scaled to N. The gradient, the loss, the line
    search and the stopping rule stay exact, so the optimum is the same; only the path to it may
    take a step or two more. None: the exact Hessian."""
    P, N, d = x.shape
    K, D = n_classes, d + 1
    dt = torch.float64
    onehot = torch.nn.functional.one_hot(y, K).to(dt)[None]
    W = torch.zeros(P, K, d, device=x.device, dtype=x.dtype)
    b = torch.zeros(P, K, device=x.device, dtype=x.dtype)
    penalty = torch.full((K, D), 1 / C, device=x.device, dtype=dt)
    penalty[:, -1] = 1e-6  # the intercept: unpenalised (a tiny ridge fixes softmax's shift freedom)
    penalty = torch.diag(penalty.reshape(-1))
    eye = torch.eye(K, device=x.device, dtype=dt)
    rows = None  # the tokens the Hessian is estimated on
    if hessian_sample is not None and hessian_sample < N:
        gen = torch.Generator().manual_seed(seed)
        rows = torch.randperm(N, generator=gen)[:hessian_sample].sort().values.to(x.device)
    for start in range(0, P, group):
        xg = x[start : start + group].to(dt)
        xt = torch.cat([xg, torch.ones_like(xg[..., :1])], -1)
        theta = torch.zeros(xt.shape[0], K, D, device=x.device, dtype=dt)
        active = torch.arange(xt.shape[0], device=x.device)  # probes not yet converged
        for _ in range(max_iter):
            xa, th = xt[active], theta[active]
            logp = torch.log_softmax(torch.bmm(xa, th.transpose(1, 2)), -1)
            loss = -(logp * onehot).sum((1, 2)) + (th[..., :-1] ** 2).sum((1, 2)) / (2 * C)
            p = logp.exp()
            reg = th.clone()
            reg[..., -1] = 0
            grad = torch.einsum("pnk,pnd->pkd", p - onehot, xa) + reg / C
            keep = grad.abs().amax((1, 2)) / N >= tol
            if not keep.any():
                break
            active, xa, th, p, grad, loss = active[keep], xa[keep], th[keep], p[keep], grad[keep], loss[keep]
            a = xa.shape[0]
            ph, xh = (p, xa) if rows is None else (p[:, rows], xa[:, rows])
            n_h = xh.shape[1]
            m = (ph[..., None] * xh[:, :, None, :]).reshape(a, n_h, K * D)  # p_k x
            weighted = ph.transpose(1, 2)[..., None] * xh[:, None]  # [a, K, n_h, D]: p_k x
            blocks = weighted.transpose(-1, -2) @ xh[:, None]  # [a, K, D, D]: sum_n p_k x x^T
            h = torch.einsum("pkab,kl->pkalb", blocks, eye).reshape(a, K * D, K * D)
            h = (h - torch.bmm(m.transpose(1, 2), m)) * (N / n_h) + penalty
            step = torch.linalg.solve(h, grad.reshape(a, K * D)).reshape(a, K, D)
            slope = (grad * step).sum((1, 2))
            t = torch.ones(a, 1, 1, device=x.device, dtype=dt)
            for _ in range(30):  # Armijo backtracking, per probe
                worse = _loss(xa, th - t * step, onehot, C) > loss - 1e-4 * t[:, 0, 0] * slope
                if not worse.any():
                    break
                t[worse] /= 2
            theta[active] = th - t * step
        W[start : start + group], b[start : start + group] = theta[..., :-1].to(x.dtype), theta[..., -1].to(x.dtype)
    return W, b


def predict(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Class index per probe and sample: [P, N]."""
    return (torch.einsum("pnd,pkd->pnk", x, W) + b[:, None, :]).argmax(-1)
