"""`newswatch up`: the whole pipeline on one machine (broker, demo feeds, stages, sink), supervised."""
