"""Real-image inversion for Prompt-to-Prompt editing, in ComfyUI's own sampling coordinates.

Everything runs on ComfyUI's pieces: sigmas from its "ddim_uniform" scheduler, the model called
through a CFGGuider (so every model sampling ComfyUI knows works: eps, v-prediction, ...), and
a result that a stock sampler continues: KSamplerAdvanced (add_noise disabled) or SamplerCustom
(add_noise off) with sampler "ddim" (or "euler"), scheduler "ddim_uniform" and the same steps.

Coordinates. ComfyUI samples x in k-diffusion space: x = x0 + sigma * eps, and its "ddim" sampler
is Euler, x' = x + (s' - s) * (x - D(x, s)) / s, which is deterministic DDIM (eta 0).

* DDIM inversion runs that step backwards with the source prompt at guidance 1, evaluating the
  model at the higher sigma with the current latent (as the official code does). The UNet input is
  rescaled so the network sees the latent at its true noise level, exactly like the official
  eps(x_{t-1}, t) in DDPM space.
* Null-text (Mokady et al.): for each sampling step, Adam optimises the unconditional text
  embedding so that the guided step lands on the inversion ("pivot") trajectory. Official
  settings (method "null_text"): lr 1e-2 * (1 - i/100), at most 10 inner iterations, Adam step
  then early stop when that iteration's loss < 1e-5 + i * 2e-5 (MSE in DDPM space), step 0 from
  the negative's embedding and each later step from the previous optimum, always fp32. For N != 50
  steps, i/100 becomes i/(2N) and the threshold's slope 2e-5 * 50/N (identical at 50). While
  sampling, the unconditional rows of the text context get the step's embedding and the sampler's
  negative is replaced by the one the embeddings were optimised with (same pooled output on SDXL).
* Warm-started null-text ("null_text_fast"): the same objective, optimiser,
  threshold and limit, with the source conditioning as the unconditional one, so step 0 starts
  from the source prompt's embedding (where negative-prompt inversion stays; with 0 iterations it
  IS negative-prompt inversion) and later steps from the previous optimum. The optimum lies near
  the source embedding: on the test and demo models every step is under the threshold after the
  first update. Where the threshold is out of reach (a step the embedding cannot fit that closely),
  a step ends when the last update did not help or the remaining updates could not reach the
  threshold at its rate; it keeps the best embedding it evaluated.
* Gradients (patches.WeightsAsReferences, around the one differentiated evaluation per iteration):
  the weights enter autograd as themselves (inference-mode weights as normal tensors on the same
  memory, no copy), and a weight cast the backward pass needs (fp16 weights in fp32 compute) is
  kept as a reference and recast then, so the backward pass holds activations only, never a copy
  of the weights. The gradient is bit-identical to the copy path it replaced (identity weight
  wrappers, kept as NullTextInversion(gradient="copies")). Everything else goes through
  ComfyUI's public patcher API: the fp32 compute dtype and an attn2 patch that puts the embedding
  into the unconditional rows of the text context.
* Fixed-point inversion ("fixed_point", the node's default): each step solved as the implicit
  equation it is (the latent whose sampler step lands on the current one, at the sampler's guided
  velocity) by fixed-point iteration warm-started with the previous step's velocity (AIDI, ReNoise;
  FireFlow's reuse). On the tiny and demo models it reconstructs 30-40 dB closer than null-text for
  fewer model calls and no gradients.
* Flow-matching models (Flux.1, SD3: CONST model sampling): the same loop on ComfyUI's euler and the
  model's own flow schedule ("simple"), where the Euler step is x' = x + (s' - s) v; the sampler is
  handed the inverted latent as its noise (flow sampling starts at s0 * noise + (1 - s0) * latent).
  Flux.1 has no unconditional branch: the methods that work on it are refused.
* Negative-prompt inversion (Miyake et al.): DDIM inversion, then sample with the source
  prompt as the unconditional prompt of every batch item (it replaces the sampler's negative).
* Direct inversion (Ju et al., "PnP Inversion"): DDIM inversion; while editing, the source item
  (batch item 0) is put back onto the inversion trajectory after every step, so it reconstructs
  exactly and the edits attend to a faithful source. PnP adds per-step offsets
  x*_{i+1} - x_src_{i+1} to the source latent; a post-CFG function here sets the source's
  denoised value so that ComfyUI's DDIM step lands on x*_{i+1}, which is the same latent at every
  step and does not depend on the guidance scale.

`install_inversion` registers what a method needs at sampling time on an already cloned
ModelPatcher (attention patch, post-CFG function, and an OUTER_SAMPLE wrapper that refuses a
schedule, sampler, noise or batch the inversion was not made for).

Layout: result.py (the P2P_INVERSION value), settings.py (shared sampler, keys, null-text settings),
the model hooks one per job (uncond_context.py, direct.py, weight_refs.py), methods.py (one strategy
per method), run.py (`invert`), sampling.py (`install_inversion`).
"""

from .methods import METHODS
from .result import Inversion
from .run import inversion_sigmas, invert
from .sampling import install_inversion
from .settings import FLOW_SAMPLER, FLOW_SCHEDULER, SAMPLER, SCHEDULER
from .uncond_context import UncondContextPatch

__all__ = ["FLOW_SAMPLER", "FLOW_SCHEDULER", "METHODS", "SAMPLER", "SCHEDULER", "Inversion", "UncondContextPatch",
           "install_inversion", "invert", "inversion_sigmas"]
