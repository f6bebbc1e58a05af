"""Control models of the thesis' claims (issue #19): the mechanism each claim names, built into a
model of the claim's shape at the claim's own settings (the same IOI prompt set with BOS, the same
repeated-token head-score inputs), and the same model without it.

Why a module beside ioi_circuit: a claim declares its controls next to its bound measurement, and
the plugin runs that very measurement on these models; the builders moved here from tests/ so a
control can never drift from its claim. Each builder returns what the claim's preparation
(`ioi.OnPrompts`, `ioi.OnScores`) takes: a bridge, or a prepared IOIRun / HeadScores computed with
the planting hooks in place (the bridge runs attention inside the HF module, so a pattern edit
reaches the cache the claims read, not later layers: TransformerLens warns so, silenced here).

Builders are memoised: a stand-in is built once per process and shared by every claim's controls;
a planted model is kept while it is among its builder's HELD most recent ones.
"""

from __future__ import annotations

import functools
import warnings
from contextlib import contextmanager
from types import SimpleNamespace

import torch

from mechcheck import models
from mechcheck.data import cache_root, data_dir, gpt2_tokenizer, ioi_prompts
from mechcheck.metrics import head_scores
from mechcheck.metrics.activations import CHUNK
from mechcheck.metrics.logit_diff import _at_end, _direction, end_logits, logit_diff
from mechcheck.metrics.path_patching import _weights as _weights_of
from mechcheck.metrics.path_patching import resume_residual
from mechcheck.models import organisms
from mechcheck.studies import ioi, ioi_circuit

TS8M, GPT2, TS3M = "roneneldan/TinyStories-8M", "gpt2", "roneneldan/TinyStories-3M"
# planted models held at once per builder: neighbouring claims share theirs, while a whole claim file's
# (a GPT-2 IOIRun with its caches is about 0.6 GB) would not fit in memory (the slow controls reached 23 GB)
HELD = 2


# ---------------------------------------------------------------- the models

@functools.cache
def stand_in(name: str = TS8M):
    """The exact-config random checkpoint of `name` (seed 0), written once under the cache."""
    directory = cache_root() / "standins" / name.replace("/", "--")
    if not (directory / "config.json").is_file():
        models.save_random(name, directory)
    return models.load_hf(name, directory, "cpu", gpt2_tokenizer(data_dir())).bridge


def stand_in_run(name: str = TS8M):
    """The stand-in on the claims' IOI prompt set (default names)."""
    return ioi.OnPrompts()(stand_in(name))


@functools.cache
def name_mover(trained: bool = True):
    """The attention-only name-mover organism on its own IOI sentences (its vocabulary): trained, a
    layer-0 head attends END->S2 and layer-1 heads move IO; untrained, the same shape at random."""
    tok = organisms.name_mover_tokenizer()
    prompts = ioi_prompts.build(tok, names=organisms.NM_NAMES, templates=organisms.NM_TEMPLATES)
    recipe = organisms.name_mover_recipe()
    bridge = organisms.bridge(organisms.get(recipe), tok) if trained else organisms.random_bridge(recipe, tok)
    return ioi.IOIRun(bridge, prompts)


@contextmanager
def _hooks(bridge, hooks):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*edit is discarded.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="transformer_lens")
        with bridge.hooks(fwd_hooks=hooks):
            yield


def _prepared(bridge, prompts, hooks, sweeps=()):
    """IOIRun with `hooks` in place, and the lazy sweeps named in `sweeps` computed under them."""
    with _hooks(bridge, hooks):
        run = ioi.IOIRun(bridge, prompts)
        for sweep in sweeps:
            getattr(run, sweep)()
    return run


class _Rows:
    """Which prompt each batch row is: forward passes run the prompts in order (clean, corrupted,
    repeated copies for batched patching), so row r of the k-th row seen is prompt k mod n."""

    def __init__(self, n):
        self.n, self.seen = n, {}

    def __call__(self, key, batch):
        start = self.seen.get(key, 0)
        self.seen[key] = start + batch
        return (start + torch.arange(batch)) % self.n


# ---------------------------------------------------------------- planted attention rows (IOI prompts)

def _positions(name: str, p, rows):
    if name == "END":
        return p.pos_end[rows]
    if name == "gave":
        return p.pos_s2[rows] + 1
    if name == "and":  # the 'and' right after S1 on '{S1} and {IO}' prompts; -1 (left alone) elsewhere
        return torch.where(p.pos_s1[rows] < p.pos_io[rows], p.pos_s1[rows] + 1, -1)
    return {"S1": p.pos_s1, "S2": p.pos_s2, "IO": p.pos_io}[name][rows]


def _plant_rows(prompts, plants, rows_of):
    """Hooks on hook_pattern: plants = ((layer, head, query, key, weight), ...) with query/key named
    positions (END, gave, and, S1, S2, IO) or query "prev" (every position q >= 1 puts `weight` on q-1:
    a previous-token head); the row is scaled by 1 - weight and weight added at the key."""
    def hook_for(layer):
        def plant(pattern, hook):
            pattern = pattern.clone()
            rows = rows_of(layer, pattern.shape[0])
            r = torch.arange(pattern.shape[0])
            for l, h, query, key, w in plants:
                if l != layer:
                    continue
                if query == "prev":
                    for q in range(1, pattern.shape[-1]):
                        pattern[:, h, q] *= 1 - w
                        pattern[:, h, q, q - 1] += w
                    continue
                q, k = _positions(query, prompts, rows), _positions(key, prompts, rows)
                ok = q >= 0
                pattern[r[ok], h, q[ok]] *= 1 - w
                pattern[r[ok], h, q[ok], k[ok]] += w
            return pattern
        return plant
    return [(f"blocks.{layer}.attn.hook_pattern", hook_for(layer)) for layer in sorted({p[0] for p in plants})]


@functools.lru_cache(maxsize=HELD)
def planted_attention(plants: tuple, name: str = TS8M):
    """The stand-in's IOIRun with the thesis' attention rows planted (a pattern the claim names)."""
    plain = stand_in_run(name)
    return _prepared(plain.bridge, plain.prompts, _plant_rows(plain.prompts, plants, _Rows(len(plain.prompts))))


# ---------------------------------------------------------------- planted direct effects and S2 readers

def _shift(bridge, run, layer, head, logits):
    """Per prompt, the z of (layer, head) that writes `logits` along the IO - S readout at END (at the
    unplanted run's final LayerNorm scale)."""
    d = _direction(bridge, run.prompts)
    d = d - d.mean(-1, keepdim=True)
    w = torch.einsum("ed,nd->ne", bridge.W_O[layer, head], d / _at_end(run.cache["ln_final.hook_scale"], run.prompts))
    return logits * w / w.pow(2).sum(-1, keepdim=True)


@functools.lru_cache(maxsize=HELD)
def planted_dla(plants: tuple, name: str = TS8M):
    """Heads whose END output writes a fixed number of logits along IO - S (plants = ((layer, head,
    logits), ...)): direct effects the DLA claims read, the same in clean and corrupted runs."""
    plain = stand_in_run(name)
    b, rows = plain.bridge, _Rows(len(plain.prompts))
    by_layer: dict = {}
    for layer, head, logits in plants:
        by_layer.setdefault(layer, []).append((head, _shift(b, plain, layer, head, logits)))

    def hook_for(layer):
        def plant(z, hook):
            z = z.clone()
            rr = rows(layer, z.shape[0])
            for head, shift in by_layer[layer]:
                z[torch.arange(z.shape[0]), plain.prompts.pos_end[rr], head] += shift[rr]
            return z
        return plant

    return _prepared(b, plain.prompts, [(f"blocks.{l}.attn.hook_z", hook_for(l)) for l in sorted(by_layer)])


# one more than HELD: I8.fewer's controls build an 8M model before asking again for I8.gpt2's GPT-2 model, whose
# head-patching sweep (kept on the run) is then read, not recomputed (claims/test_ioi_tinystories_8m.py GPT2_READERS)
@functools.lru_cache(maxsize=HELD + 1)
def s2_reader_heads(plants: tuple, name: str = TS8M):
    """Heads that read which name stands at S2 and write the answer at END (plants = ((layer, head,
    logits), ...)): each head's END output adds `logits` x a along IO - S, where a = +1/2 when S2
    holds S (the clean prompt) and -1/2 when it holds IO (the corrupted one), read from the
    embedding at S2 in the same forward pass. Patching such a head's output from the clean run
    into the corrupted one restores its share: head patching finds exactly these heads.

    The head-patching sweep resumes its passes for layers >= 1 at the patched layer
    (path_patching._patched_run), where the embedding hook does not fire: the plants then use the
    read of the sweep's last full pass (a layer-0 patch of the same corrupted prompts, as many rows),
    which is what the resumed pass would read, as no head patch changes the embedding."""
    plain = stand_in_run(name)
    b, p, n = plain.bridge, plain.prompts, len(plain.prompts)
    s2 = p.pos_s2
    emb = "blocks.0.hook_resid_pre"
    r = plain.cache[emb][torch.arange(n), s2] - plain.corrupted_cache[emb][torch.arange(n), s2]
    mid = 0.5 * ((plain.cache[emb][torch.arange(n), s2] + plain.corrupted_cache[emb][torch.arange(n), s2]) * r).sum(-1)
    rows, state = _Rows(n), {}
    shifts = {(l, h): _shift(b, plain, l, h, logits) for l, h, logits in plants}

    def read(x, hook):
        rr = rows("embed", x.shape[0])
        state["a"] = ((x[torch.arange(x.shape[0]), s2[rr]] * r[rr]).sum(-1) - mid[rr]) / r[rr].pow(2).sum(-1)
        state["rows"] = rr
        return x

    def hook_for(layer):
        def plant(z, hook):
            z = z.clone()
            rr, a = state["rows"], state["a"]
            for (l, h), shift in shifts.items():
                if l == layer:
                    z[torch.arange(z.shape[0]), p.pos_end[rr], h] += a[:, None] * shift[rr]
            return z
        return plant

    hooks = [(emb, read)] + [(f"blocks.{l}.attn.hook_z", hook_for(l)) for l in sorted({l for l, _, _ in plants})]
    return _prepared(b, p, hooks, sweeps=("head_patching",))


@functools.lru_cache(maxsize=HELD)
def negative_mover(logits: float, name: str = TS8M):
    """A negative name mover of `logits` (DLA -logits) planted at the head the unplanted check
    finds least active (where its detectable effect is measured)."""
    plain = stand_in_run(name)
    head = tuple(int(x) for x in ioi_circuit.no_negative_movers(plain, -0.47)["detectable_effect_head"][1:].split("H"))
    return planted_dla(((head[0], head[1], -logits),), name)


@functools.lru_cache(maxsize=HELD)
def planted_drop(logits: float, name: str = TS8M):
    """A head writing -logits at the flattest step of the logit-lens curve (I5's detectable effect)."""
    plain = stand_in_run(name)
    at = ioi_circuit.never_decreases(plain, 0.1)["detectable_effect_at"]
    layer = int(at.split(".")[0])
    layer = layer if "." not in at else min(layer + 1, plain.bridge.cfg.n_layers - 1)
    return planted_dla(((layer, 0, -logits),), name)


# ---------------------------------------------------------------- planted head scores (repeated tokens)

HALF = 50  # the head scores' settings: 16 x [BOS] r r, 50 tokens repeated once


def _scores_of(bridge, settings: ioi.OnScores, hooks=()):
    with _hooks(bridge, list(hooks)):
        raw = head_scores.head_scores(bridge, vocab=settings.vocabulary(bridge.tokenizer))
    return ioi.HeadScores({k: v.cpu().numpy() for k, v in raw.items()}, settings)


def _score_plant(head, strength, kind):
    """One head's second-half rows mixed (1-a) pattern + a target: the induction target q-half+1,
    the duplicate-token target q-half, or the previous token q-1."""
    def plant(pattern, hook):
        pattern = pattern.clone()
        q = torch.arange(1 + HALF, pattern.shape[-1]) if kind != "previous_token" else torch.arange(1, pattern.shape[-1])
        k = {"induction": q - HALF + 1, "duplicate_token": q - HALF, "previous_token": q - 1}[kind]
        target = torch.zeros_like(pattern[:, head[1], q])
        target[:, torch.arange(len(q)), k] = 1.0
        pattern[:, head[1], q] = (1 - strength) * pattern[:, head[1], q] + strength * target
        return pattern
    return (f"blocks.{head[0]}.attn.hook_pattern", plant)


@functools.lru_cache(maxsize=HELD)
def planted_scores(kind: str, heads: tuple, strength: float, vocab: str = "all", name: str = TS8M):
    """The stand-in's head scores at the claims' settings with `heads` planted as `kind` heads of
    `strength`; heads = ("weakest",) plants at the head the absence check finds least active (where
    its detectable effect is measured); () is the unplanted stand-in."""
    settings = ioi.OnScores(vocab)
    bridge = stand_in(name)
    if heads == ("weakest",):
        plain = settings(bridge)
        at = ioi_circuit.absent_head_score(plain, kind, 0.5)["detectable_effect_head"]
        heads = (tuple(int(x) for x in at[1:].split("H")),)
    return _scores_of(bridge, settings, [_score_plant(h, strength, kind) for h in heads])


def planted_score_forms(kind: str, heads: tuple, strength: float, name: str = TS8M):
    """The planted scores on both vocabularies (I1.8m decides on TinyStories tokens and records the
    thesis' uniformly random form beside)."""
    return (planted_scores(kind, heads, strength, "tinystories", name), planted_scores(kind, heads, strength, "all", name))


def pair(first, second):
    """Two control models for a claim that compares two models (8M vs GPT-2)."""
    return first(), second()


def config_pair(a: str, b: str):
    """Two exact-config stand-ins (for a claim read from the configs)."""
    return stand_in(a), stand_in(b)


def organism_vs(name: str):
    """The name-mover organism's bridge (2 layers x 4 heads) and a stand-in of `name`."""
    return name_mover(True).bridge, stand_in(name)


# ---------------------------------------------------------------- planted runs that read S2

class _PlantedRun(ioi.IOIRun):
    """An IOIRun whose planting hooks stay in place for its lazy sweeps too (head patching, edges,
    senders: computed on first use by whichever claim asks), not only for its two caches."""

    def __init__(self, bridge, prompts, hooks):
        self._plants = list(hooks)
        with _hooks(bridge, self._plants):
            super().__init__(bridge, prompts)

    def _under(self, sweep, *args):
        with _hooks(self.bridge, self._plants):
            return sweep(*args)

    def head_patching(self):
        return self._under(super().head_patching)

    def resid_patching(self):
        return self._under(super().resid_patching)

    def edges(self, receiver, component):
        return self._under(super().edges, receiver, component)

    def senders(self, receivers, component, senders=None):
        return self._under(super().senders, receivers, component, senders)


def _reads_s2(plain, point: str):
    """How a component at hook `point` tells the clean prompt from the corrupted one: per prompt,
    the unplanted clean - corrupted activation r at S2 and the midpoint, so that
    a = (x_S2 . r - mid) / |r|^2 is +1/2 on the clean prompt and -1/2 on the corrupted one (a read
    of which name stands at S2 from the residual stream the component itself sees)."""
    i, s2 = torch.arange(len(plain.prompts)), plain.prompts.pos_s2
    c, k = plain.cache[point][i, s2], plain.corrupted_cache[point][i, s2]
    r = c - k
    return r, 0.5 * ((c + k) * r).sum(-1), r.pow(2).sum(-1)


def _sign(x, rows, s2, read):
    r, mid, r2 = read
    return ((x[torch.arange(x.shape[0]), s2[rows]] * r[rows]).sum(-1) - mid[rows]) / r2[rows]


# ---------------------------------------------------------------- residual writers (logit difference, hand-over)

def _writer_hooks(plain, plants, rows):
    """Writers (layer, logits) that read which name stands at S2 from their layer's residual stream
    and add logits * a along IO - S at END to that layer's output (a = +1/2 clean, -1/2 corrupted;
    logits at the unplanted final LayerNorm scale). Why the residual stream and not a head's z: a
    head can only write in its 16 dimensions of W_O, mostly off the IO - S direction, and the final
    LayerNorm shrinks that surplus' logits away; a write along IO - S is shrunk least."""
    b, p = plain.bridge, plain.prompts
    d = _direction(b, p)
    d = d - d.mean(-1, keepdim=True)
    unit = d * _at_end(plain.cache["ln_final.hook_scale"], p) / d.pow(2).sum(-1, keepdim=True)  # 1 logit
    hooks = []
    for layer, logits in plants:
        point, state = f"blocks.{layer}.hook_resid_pre", {}
        read = _reads_s2(plain, point)

        def sign(x, hook, point=point, read=read, state=state):
            rr = rows(point + "|writer", x.shape[0])
            state["a"], state["rows"] = _sign(x, rr, p.pos_s2, read), rr
            return x

        def write(x, hook, logits=logits, state=state):
            x = x.clone()
            rr = state["rows"]
            x[torch.arange(x.shape[0]), p.pos_end[rr]] += logits * state["a"][:, None] * unit[rr]
            return x

        hooks += [(point, sign), (f"blocks.{layer}.hook_resid_post", write)]
    return hooks


@functools.lru_cache(maxsize=HELD)
def planted_writers(plants: tuple, sharpen: float = 1.0, name: str = TS8M):
    """The stand-in with residual writers (_writer_hooks): S2's information reaches END in the layer
    of each writer, so residual-stream patching hands over right after it. sharpen > 1 divides the
    final LayerNorm's scale (the logits of every token times `sharpen`): a sharper unembedding, for a
    logit difference or a probability beyond what the random stand-in's unembedding can reach."""
    plain = stand_in_run(name)
    hooks = _writer_hooks(plain, plants, _Rows(len(plain.prompts)))
    if sharpen != 1.0:
        hooks.append(("ln_final.hook_scale", lambda scale, hook: scale / sharpen))
    return _PlantedRun(plain.bridge, plain.prompts, hooks)


_MEAN = {"logit_diff": lambda run: float(run.ld.mean()),
         "probability": lambda run: float(ioi_circuit.correct_probability(run)["value"])}


def _last_layer_run(plain, strength: float, sharpen: float):
    """What `_MEAN` reads of planted_writers(((last, strength),), sharpen) (its clean END logits, logit
    difference and prompts), from the last block alone: resumed on the unplanted run's cached
    residual stream entering that block, which a writer in the last layer cannot change.

    Why: planted_value bisects the writer's strength over 14 models; building each as a whole IOIRun
    (two cached forward passes of every block) cost 75 s of the GPT-2 stand-in's I4.gpt2 control, a
    twelfth of that is enough. The same chunks of CHUNK prompts as IOIRun's cache, the same hooks and
    the same reductions, so each step's mean equals the whole run's (tests/test_ioi.py)."""
    b, p = plain.bridge, plain.prompts
    last = b.cfg.n_layers - 1
    hooks = _writer_hooks(plain, ((last, strength),), _Rows(len(p)))
    if sharpen != 1.0:
        hooks.append(("ln_final.hook_scale", lambda scale, hook: scale / sharpen))
    entering = plain.cache[f"blocks.{last - 1}.hook_resid_post"]
    with _hooks(b, hooks), torch.no_grad():
        resid = torch.cat([resume_residual(b, entering[i : i + CHUNK], last) for i in range(0, len(p), CHUNK)])
        logits = end_logits(b, resid, p)
    return SimpleNamespace(logits=logits, ld=logit_diff(logits, p), prompts=p)


@functools.lru_cache(maxsize=HELD)
def planted_value(metric: str, target: float, sharpen: float = 1.0, name: str = TS8M):
    """The stand-in with a writer in its last layer whose strength is set (bisection) so that the
    mean `metric` ("logit_diff" or "probability" of IO at END) over the prompt set is `target`: a
    model whose baseline is the published one. Each step is read from the last block alone
    (_last_layer_run); the model returned is built whole."""
    plain = stand_in_run(name)
    lo, hi = 0.0, 64.0
    for _ in range(14):
        mid = (lo + hi) / 2
        value = _MEAN[metric](_last_layer_run(plain, mid, sharpen))
        lo, hi = (mid, hi) if value < target else (lo, mid)
    return planted_writers(((plain.bridge.cfg.n_layers - 1, round(hi, 3)),), sharpen, name)


# ---------------------------------------------------------------- planted edges (path patching)

def _sender_points(sender: str):
    """(hook read for the sender's S2 signal, hook its write goes into, head or None) of a sender
    named as path patching names it: "embed", "MLPx" or "LxHy"."""
    if sender == "embed":
        return "blocks.0.hook_resid_pre", "blocks.0.hook_resid_pre", None
    if sender.startswith("MLP"):
        point = f"blocks.{int(sender[3:])}.hook_resid_post"
        return point, point, None
    layer, head = (int(x) for x in sender[1:].split("H"))
    return f"blocks.{layer}.hook_resid_pre", f"blocks.{layer}.attn.hook_z", head


def _readout(receiver, prompts, shift):
    """What a planted receiver reads, per row: its END output z along the z that writes the logit
    difference (`shift`), read on its hook_z, which fires after hook_q / hook_v and so sees a
    path-patched query or value (hook_pattern fires only after hook_z on these bridges)."""
    layer, head = receiver
    unit = shift / shift.norm(dim=-1, keepdim=True)

    def read(act, rows):
        r = torch.arange(act.shape[0])
        return (act[r, prompts.pos_end[rows], head] * unit[rows]).sum(-1)
    return f"blocks.{layer}.attn.hook_z", read


def _sender_hooks(plain, sender: str, write_at, U, rows):
    """Hooks making `sender` write a * U[prompt] at positions `write_at`, a = +1/2 on the clean
    prompt and -1/2 on the corrupted one as the sender reads S2 (_reads_s2): a component whose
    clean - corrupted write is U, the thing path patching moves along an edge."""
    read_point, write_point, head = _sender_points(sender)
    read, s2, state = _reads_s2(plain, read_point), plain.prompts.pos_s2, {}

    def sign(x, hook):
        rr = rows(read_point + "|read", x.shape[0])
        state["a"], state["rows"] = _sign(x, rr, s2, read), rr
        return x

    def write(x, hook):
        if read_point == write_point:
            sign(x, hook)
        x = x.clone()
        rr, a, r = state["rows"], state["a"], torch.arange(x.shape[0])
        if head is None:
            x[r, write_at[rr]] += a[:, None] * U[rr]
        else:
            x[r, write_at[rr], head] += a[:, None] * U[rr]
        return x

    return ([] if read_point == write_point else [(read_point, sign)]) + [(write_point, write)]


def _readout_of(bridge, prompts, hooks, point, read):
    """The receiver's readout per prompt on the clean and on the corrupted prompts, with `hooks`."""
    n, got = len(prompts), []

    def keep(act, hook):
        got.append(read(act, torch.arange(act.shape[0]) % n))
        return act

    with _hooks(bridge, list(hooks) + [(point, keep)]), torch.no_grad():
        bridge(prompts.tokens)
        bridge(prompts.corrupted)
    return got[0], got[1]


def _gradients(plain, sender: str, positions, receiver, component: str, point, read):
    """Per prompt, the gradient of the receiver's readout (clean prompts) with respect to what
    `sender` writes at `positions`, through the whole model (total) and through the receiver's
    `component` input alone (edge: the write added to that input only, as path patching adds it):
    (total, edge), each [n, dim]."""
    b, p, n = plain.bridge, plain.prompts, len(plain.prompts)
    _, write_point, s_head = _sender_points(sender)
    layer, head = receiver
    dim = b.cfg.d_head if s_head is not None else b.cfg.d_model
    s_layer = None if s_head is None else int(sender[1:].split("H")[0])
    r = torch.arange(n, device=b.cfg.device)
    out = []
    for route in ("total", "edge"):
        e, store = torch.zeros(n, dim, device=b.cfg.device, requires_grad=True), {}
        if route == "total":
            def add(x, hook):
                x = x.clone()
                if s_head is None:
                    x[r, positions] = x[r, positions] + e
                else:
                    x[r, positions, s_head] = x[r, positions, s_head] + e
                return x
            hooks = [(write_point, add)]
        else:
            W, bias = (w[layer, head] for w in _weights_of(b, component))

            def keep(x, hook):
                store["resid"] = x
                return x

            def patch(x, hook):
                x = x.clone()
                write = e @ b.W_O[s_layer, s_head] if s_head is not None else e
                delta = torch.zeros_like(store["resid"])
                delta[r, positions] = write
                x[:, :, head] = b.blocks[layer].ln1(store["resid"] + delta) @ W + bias
                return x
            hooks = [(f"blocks.{layer}.hook_resid_pre", keep), (f"blocks.{layer}.attn.hook_{component}", patch)]
        got = []

        def keep_read(act, hook):
            got.append(read(act, r))
            return act

        with _hooks(b, hooks + [(point, keep_read)]), torch.enable_grad():
            b(p.tokens)
            got[0].sum().backward()
        out.append(e.grad.detach())
    return out[0], out[1]


EDGE_GAIN = 20.0  # a planted sender moves the receiver's readout 20x its unplanted clean - corrupted span (rms)


@functools.lru_cache(maxsize=HELD)
def planted_edge(senders: tuple, receiver: tuple, component: str, logits: float, base: tuple = (),
                 name: str = TS8M):
    """A sender -> receiver edge built into the stand-in, for the path-patching claims: each of
    `senders` ("embed", "MLPx", "LxHy") writes, clean minus corrupted, a vector U that moves the
    receiver's readout (_readout) through its `component` input by EDGE_GAIN times the readout's
    unplanted span and, to first order, not at all by any other route (U is orthogonal to the
    gradient of the other routes: later layers reading the write, the receiver's other inputs);
    the receiver reads it (a_r, calibrated to +1/2 on the clean prompt and -1/2 on the corrupted
    one) and writes logits * a_r along IO - S at END. `base` writers ((layer, logits), _writer_hooks)
    add a logit difference that no edge into a head carries, so a sender's path-patching recovery is
    about the receiver's share of the whole. A query edge is written at END (the name mover's
    query), a value edge at S2 (the name it moves).

    `logits` is nominal: the receiver's write is sized at the unplanted final LayerNorm scale, which
    the writes themselves raise, so the planted model's logit difference is smaller than `logits`
    (as with _writer_hooks' writers). The path-patching claims read recoveries, shares of the
    difference the model actually has, so their controls decide on those shares, never on `logits`."""
    plain = stand_in_run(name)
    b, p, n = plain.bridge, plain.prompts, len(plain.prompts)
    layer, head = receiver
    positions = p.pos_end if component == "q" else p.pos_s2
    shift = _shift(b, plain, layer, head, 1.0).detach()
    point, read = _readout(receiver, p, shift)
    clean, corrupt = _readout_of(b, p, [], point, read)
    span = EDGE_GAIN * float((clean - corrupt).pow(2).mean().sqrt())
    U = {}
    for s in senders:
        total, edge = _gradients(plain, s, positions, receiver, component, point, read)
        other = total - edge
        u = edge - other * (edge * other).sum(-1, keepdim=True) / other.pow(2).sum(-1, keepdim=True)
        U[s] = span * u / (u * edge).sum(-1, keepdim=True)

    def sender_hooks(rows):
        return [h for s in senders for h in _sender_hooks(plain, s, positions, U[s], rows)]

    clean, corrupt = _readout_of(b, p, sender_hooks(_Rows(n)) + _writer_hooks(plain, base, _Rows(n)), point, read)
    mid, width = (clean + corrupt) / 2, clean - corrupt
    rows = _Rows(n)

    def receive(z, hook):
        rr = rows("receiver", z.shape[0])
        a = (read(z, rr) - mid[rr]) / width[rr]
        z = z.clone()
        z[torch.arange(z.shape[0]), p.pos_end[rr], head] += logits * a[:, None] * shift[rr]
        return z

    return _PlantedRun(b, p, sender_hooks(rows) + _writer_hooks(plain, base, rows) + [(point, receive)])
