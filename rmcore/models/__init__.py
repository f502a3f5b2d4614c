"""Reward models and the text models they are built on.

- `base`: the `RewardScorer` protocol and what every backend shares (device, batching, ids);
- `render`: the one rendering of (prompt, response) that every model and the LM weights read;
- `encoder`: the bundled sentence encoder (embeddings per distinct text, cached by callers);
- `head`: what the two heads on a frozen encoder share (saving, loading, identity);
- `embed_head`: `EmbedHeadRewardModel`, an MLP on cached sentence embeddings (cheap);
- `token_states`: per-text encoder token states and their memory-mapped disk cache;
- `late_interaction`: `LateInteractionRewardModel`, cross-attention over cached token states
  (reads the prompt at token level, one encoder pass per distinct text);
- `joint`: `JointRewardModel`, any sequence classifier reading prompt and response together;
- `lm_loglik`: `CausalLMScorer`, per-token log-likelihoods for importance weights;
- `loading`: the safe `from_pretrained` path and backend detection.

Import the module you need (`from rmcore.models.joint import JointRewardModel`): the
backends pull in transformers, so this package imports nothing eagerly.
"""
