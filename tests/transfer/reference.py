"""reference.py — independent float64 numpy implementations of LogME, H-score, NCE and LEEP for
the tests (no code shared with Graft's C: LogME works on the full Bayesian linear regression
matrices, primal or dual, never on an eigendecomposition; H-score follows TLlib's np.cov/pinv
form, or an SVD of the centred features when they are wide)."""
import numpy as np


def logme(f, y, k):
    """The full-matrix form for small problems, the SVD form (as the LogME authors' code) for wide
    real features, where a matrix solve per fixed-point step would take minutes."""
    f = np.asarray(f, np.float64)
    if f.shape[0] * f.shape[1] > 40000:
        return logme_svd(f, y, k)
    return logme_full(f, y, k)


def logme_svd(f, y, k, cutoff=1e-10):
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s ** 2
    keep = sigma > cutoff * sigma.max()
    u, sigma = u[:, keep], sigma[keep]
    evs = []
    for c in range(k):
        yc = (y == c).astype(np.float64)
        x2 = (u.T @ yc) ** 2
        res0 = yc @ yc - x2.sum()
        alpha, beta = 1.0, 1.0

        def state(alpha, beta):
            t = alpha / beta
            gamma = (sigma / (sigma + t)).sum()
            m2 = (sigma * x2 / (t + sigma) ** 2).sum()
            res2 = (x2 / (1 + sigma / t) ** 2).sum() + res0
            return gamma, m2, res2

        for _ in range(1000):
            t = alpha / beta
            gamma, m2, res2 = state(alpha, beta)
            alpha = gamma / (m2 + 1e-5)
            beta = (n - gamma) / (res2 + 1e-5)
            if abs(alpha / beta - t) <= 1e-12 * t:
                break
        gamma, m2, res2 = state(alpha, beta)
        logdet = (d - len(sigma)) * np.log(alpha) + np.log(alpha + beta * sigma).sum()
        ev = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * logdet - beta / 2 * res2
              - alpha / 2 * m2 - n / 2 * np.log(2 * np.pi))
        evs.append(ev / n)
    return float(np.mean(evs))


def logme_full(f, y, k):
    n, d = f.shape
    dual = d > n
    K = f @ f.T if dual else None
    FtF = None if dual else f.T @ f
    evs = []
    for c in range(k):
        yc = (y == c).astype(np.float64)
        alpha, beta = 1.0, 1.0

        def state(alpha, beta):
            t = alpha / beta
            if dual:
                # A = αI + βFᵀF (d×d) through the n×n system: m = Fᵀ (tI + FFᵀ)⁻¹ y,
                # tr(A⁻¹) = (d − tr((tI+K)⁻¹K))/α, log|A| = d log α + log|I + K/t|
                M = t * np.eye(n) + K
                sol = np.linalg.solve(M, yc)
                m = f.T @ sol
                tr_ainv = (d - np.trace(np.linalg.solve(M, K))) / alpha
                logdet = d * np.log(alpha) + np.linalg.slogdet(np.eye(n) + K / t)[1]
            else:
                A = alpha * np.eye(d) + beta * FtF
                m = beta * np.linalg.solve(A, f.T @ yc)
                tr_ainv = np.trace(np.linalg.inv(A))
                logdet = np.linalg.slogdet(A)[1]
            gamma = d - alpha * tr_ainv
            m2 = float(m @ m)
            res2 = float(((yc - f @ m) ** 2).sum())
            return gamma, m2, res2, logdet

        for _ in range(1000):
            t = alpha / beta
            gamma, m2, res2, _ = state(alpha, beta)
            alpha = gamma / (m2 + 1e-5)
            beta = (n - gamma) / (res2 + 1e-5)
            if abs(alpha / beta - t) <= 1e-12 * t:
                break
        gamma, m2, res2, logdet = state(alpha, beta)
        ev = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * logdet - beta / 2 * res2
              - alpha / 2 * m2 - n / 2 * np.log(2 * np.pi))
        evs.append(ev / n)
    return float(np.mean(evs))


def hscore(f, y, k, cutoff=1e-10):
    f = np.asarray(f, np.float64)
    n, d = f.shape
    g = np.zeros_like(f)
    for c in range(k):
        if (y == c).any():
            g[y == c] = f[y == c].mean(axis=0)
    if d <= 300:  # TLlib's form
        covf = np.cov(f, rowvar=False)
        covg = np.cov(g, rowvar=False)
        return float(np.trace(np.linalg.pinv(covf, rcond=cutoff, hermitian=True) @ covg))
    x = f - f.mean(axis=0)
    gc = g - g.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    s2 = s ** 2
    keep = s2 > cutoff * s2.max()
    # tr(pinv(xᵀx/(n-1)) · gcᵀgc/(n-1)) = Σ_i |gc v_i|² / s_i²
    proj = gc @ vt[keep].T
    return float(((proj ** 2).sum(axis=0) / s2[keep]).sum())


def softmax(logits):
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nce(logits, y, k):
    src = np.asarray(logits).argmax(axis=1)
    ks = np.asarray(logits).shape[1]
    n = len(y)
    joint = np.zeros((k, ks))
    for s, t in zip(src, y):
        joint[int(t), int(s)] += 1.0 / n
    pz = joint.sum(axis=0)
    h = 0.0
    for s in range(ks):
        if pz[s] == 0:
            continue
        p = joint[:, s] / pz[s]
        p = p[p > 0]
        h -= pz[s] * float((p * np.log(p)).sum())
    return -h


def leep(logits, y, k):
    p = softmax(logits)
    n, ks = p.shape
    joint = np.zeros((k, ks))
    for c in range(k):
        joint[c] = (p[y == c] / n).sum(axis=0)
    cond = (joint / joint.sum(axis=0, keepdims=True)).T  # P(y | z), ks×k
    emp = p @ cond
    return float(np.mean(np.log(emp[np.arange(n), y])))
