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


def _loss(xt, theta, y, C):
    """Per probe: summed cross-entropy + ||W||^2 / 2C (intercept, the last column, unpenalised),
    summed in float64, and the log-probabilities [P, N, K] (in xt's dtype) it was computed from."""
    logp = torch.log_softmax(torch.bmm(xt, theta.to(xt.dtype).transpose(1, 2)), -1)
    ce = -logp.gather(-1, y.expand(len(theta), -1, -1)).sum((1, 2), dtype=torch.float64)
    return ce + (theta[..., :-1] ** 2).sum((1, 2)) / (2 * C), logp


def _newton(xt, y, theta, C, max_iter, tol, rows, scale):
    """Newton steps with an Armijo line search on each probe of theta [P, K, D] (float64, in
    place) until its largest gradient entry / N is below `tol`. xt [P, N, D] with the ones column
    (float64, or float32 for the fast first phase), y [1, N, 1] labels; `rows`: the tokens the
    Hessian is estimated on (None: all), `scale` = N / their number. The Hessian, the step and the
    loss sums are float64 either way. In float32 a loss comparison can no longer resolve the last
    steps' decrease (~1e-7 of the loss per token), so there a step that changes the loss by less
    than 1e-6 of it is taken whole (Newton's full step near the optimum). Returns the number of
    Newton steps taken by the slowest probe."""
    P, N, D = xt.shape
    K = theta.shape[1]
    dt = torch.float64
    noise = 1e-6 if xt.dtype != torch.float64 else 0.0
    penalty = torch.full((K, D), 1 / C, device=xt.device, dtype=dt)
    penalty[:, -1] = 1e-6  # the intercept: unpenalised (a tiny ridge fixes softmax's shift freedom)
    penalty = torch.diag(penalty.reshape(-1))
    active = torch.arange(P, device=xt.device)  # probes not yet converged
    loss, logp = _loss(xt, theta, y, C)  # kept from the line search's accepted point: one forward per step
    xa, steps = xt, 0
    for steps in range(max_iter + 1):
        th = theta[active]
        p = logp.exp()
        ph = (p if rows is None else p[:, rows]).to(dt, copy=True)  # for the Hessian, before p becomes p - onehot
        p.scatter_add_(-1, y.expand(len(p), -1, -1), torch.full_like(p[..., :1], -1.0))  # p - onehot
        reg = th.clone()
        reg[..., -1] = 0
        grad = torch.bmm(p.transpose(1, 2), xa).to(dt) + reg / C
        keep = grad.abs().amax((1, 2)) / N >= tol
        if not keep.any() or steps == max_iter:
            break
        if not keep.all():
            active, xa, th, ph, grad, loss = active[keep], xa[keep], th[keep], ph[keep], grad[keep], loss[keep]
        a = xa.shape[0]
        xh = (xa if rows is None else xa[:, rows]).to(dt)
        n_h = xh.shape[1]
        m = (ph[..., None] * xh[:, :, None, :]).reshape(a, n_h, K * D)  # p_k x
        # H = blockdiag_k(sum_n p_k x x^T) - sum_n (p x)(p x)^T; the blocks as p^T (x x^T): one bmm
        blocks = torch.bmm(ph.transpose(1, 2), (xh[..., :, None] * xh[..., None, :]).reshape(a, n_h, D * D))
        h = -torch.bmm(m.transpose(1, 2), m)
        h.view(a, K, D, K, D).diagonal(dim1=1, dim2=3).add_(blocks.reshape(a, K, D, D).permute(0, 2, 3, 1))
        h = h * scale + penalty
        step = torch.linalg.solve(h, grad.reshape(a, K * D)).reshape(a, K, D)
        slope = (grad * step).sum((1, 2))
        t = torch.ones(a, 1, 1, device=xt.device, dtype=dt)
        new_loss, logp = _loss(xa, th - step, y, C)
        worse = (new_loss > loss - 1e-4 * slope) & ((new_loss - loss).abs() > noise * loss)
        for _ in range(30):  # Armijo backtracking, only the probes whose step is still too long
            if not worse.any():
                break
            t[worse] /= 2
            idx = worse.nonzero()[:, 0]
            tried, tried_logp = _loss(xa[idx], th[idx] - t[idx] * step[idx], y, C)
            new_loss[idx], logp[idx] = tried, tried_logp
            worse[idx] = (tried > loss[idx] - 1e-4 * t[idx, 0, 0] * slope[idx]) & ((tried - loss[idx]).abs() > noise * loss[idx])
        loss = new_loss
        theta[active] = th - t * step
    return steps


def _lda_start(xt, y, theta, C):
    """Closed-form start (in place, per probe, where its loss beats the zero start's): linear
    discriminant analysis, W_k = S^-1 mu_k, b_k = log pi_k - mu_k' S^-1 mu_k / 2, with class
    means mu_k, pooled within-class covariance S (+ 1e-3 I) and class shares pi_k."""
    P, N, D = xt.shape
    K = theta.shape[1]
    x = xt[..., :-1]
    onehot = torch.zeros(1, N, K, device=xt.device, dtype=xt.dtype).scatter_(-1, y, 1.0)
    count = onehot.sum(1)[0]  # [K]
    mu = torch.bmm(onehot.expand(P, -1, -1).transpose(1, 2), x) / count.clamp_min(1)[None, :, None]  # [P, K, d]
    centred = x - torch.bmm(onehot.expand(P, -1, -1), mu)
    cov = torch.bmm(centred.transpose(1, 2), centred) / N + 1e-3 * torch.eye(D - 1, dtype=xt.dtype, device=xt.device)
    w = torch.linalg.solve(cov, mu.transpose(1, 2)).transpose(1, 2)  # [P, K, d]
    b = torch.log(count.clamp_min(1) / N)[None] - 0.5 * (w * mu).sum(-1)
    lda = torch.cat([w, b[..., None]], -1)
    better = _loss(xt, lda, y, C)[0] < _loss(xt, theta, y, C)[0]
    theta[better] = lda[better]


def fit_multinomial(x: torch.Tensor, y: torch.Tensor, n_classes: int, C: float = 1.0, max_iter: int = 100,
                    tol: float = 1e-6, group: int = 32, hessian_sample: int | None = 1024,
                    fast_dtype: torch.dtype | None = torch.float32, fast_iter: int = 12, fast_tol: float = 3e-6,
                    lda_start: bool = True,
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights [P, K, d] and intercepts [P, K] of P independent multinomial probes on x [P, N, d]
    with shared labels y [N] (ints < n_classes), by Newton steps with an Armijo line search,
    `group` probes at a time to bound memory. The probes' (d + 1) K parameters are few (95 on
    TinyStories-1M), so the exact Hessian is cheap and ~8 steps converge to scikit-learn's
    optimum. Each probe stops when its largest gradient entry / N is below `tol`, checked in
    float64 (in float32 alone the gradient may not reach `tol` and a loss comparison never
    improves near the optimum: every probe ran all steps, each with 20 halvings, when this was
    float32 throughout).

    Sub-sampled Hessian (Byrd et al. 2011): the exact Hessian costs N (d+1)^2 K^2 per probe and
    step (95 x 95 x 7.5k on the 1M model); with `hessian_sample` it is estimated on that many
    training tokens (fixed, seeded) and scaled to N. The gradient, the loss, the line search and
    the stopping rule stay exact, so the optimum is the same; only the path to it may take a step
    or two more (~11 instead of ~7 on the 1M stand-in, each ~3x cheaper).

    Two precisions (`fast_dtype`): a step's cost is its passes over [group, N, K] (logits,
    log-softmax, exp, gradient), 3-6x faster in float32 on the CPU. The steps run there first
    (Hessian, solve and loss sums stay float64; at most `fast_iter` steps), then the same Newton
    loop in float64 starts from that point: it checks every probe's gradient against `tol` in
    float64 and takes the (usually zero or one) remaining steps, so the stopping rule, and thus
    the optimum, are those of a float64 fit. None: float64 only (the previous behaviour)."""
    P, N, d = x.shape
    K, D = n_classes, d + 1
    dt = torch.float64
    rows = None  # the tokens the Hessian is estimated on
    if hessian_sample is not None and hessian_sample < N:
        gen = torch.Generator().manual_seed(seed)
        rows = torch.randperm(N, generator=gen)[:hessian_sample].sort().values.to(x.device)
    scale = 1.0 if rows is None else N / len(rows)
    W = torch.zeros(P, K, d, device=x.device, dtype=x.dtype)
    b = torch.zeros(P, K, device=x.device, dtype=x.dtype)
    y3 = y.to(x.device)[None, :, None]
    for start in range(0, P, group):
        xg = x[start : start + group].to(dt)
        xt = torch.cat([xg, torch.ones_like(xg[..., :1])], -1)
        theta = torch.zeros(xt.shape[0], K, D, device=x.device, dtype=dt)
        if lda_start:
            _lda_start(xt, y3, theta, C)
        if fast_dtype is not None and fast_dtype != dt:
            _newton(xt.to(fast_dtype), y3, theta, C, min(fast_iter, max_iter), max(tol, fast_tol), rows, scale)
        _newton(xt, y3, theta, C, max_iter, tol, rows, scale)
        W[start : start + group], b[start : start + group] = theta[..., :-1].to(x.dtype), theta[..., -1].to(x.dtype)
    return W, b


def predict(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Class index per probe and sample: [P, N]."""
    return (torch.einsum("pnd,pkd->pnk", x, W) + b[:, None, :]).argmax(-1)
