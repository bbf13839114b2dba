"""Mean-field channels: per-step state histograms m_t (histogram) and synopses r_t (synopsis; the LLM
summariser lives in llm_summary, imported on demand because it pulls in the LLM layer; which
summariser a config names is a SummariserSpec, in spec)."""

from mfmdp.meanfield.histogram import net_polarity, normalise, step_counts, window_counts
from mfmdp.meanfield.synopsis import EmbeddingSynopsis, synopsis_series

__all__ = ["EmbeddingSynopsis", "net_polarity", "normalise", "step_counts", "synopsis_series", "window_counts"]
