// The label the loss skips: PyTorch's cross_entropy ignore_index default, which transformers'
// labels use for prompt, padding and the last position. Here, at the bottom of the stack, so
// that data (which builds labels), models, tasks and the trainer (which compute losses) share one.
export const IGNORE_INDEX = -100;
