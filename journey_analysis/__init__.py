"""journey-analysis: reproducible customer journey mapping.

Light on import: heavy libraries (scikit-learn, spaCy, papermill, matplotlib) are imported inside the
functions that use them.
"""
from journey_analysis.errors import JourneyError

__version__ = "0.1.0"
__all__ = ["JourneyError", "__version__"]
