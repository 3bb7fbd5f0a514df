"""Bundled data files (digits: UCI ML hand-written digits, CC BY 4.0, as in scikit-learn)."""
