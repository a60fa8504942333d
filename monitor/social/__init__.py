"""Listening to the public: complaint sources, the classifier and the spike detector.

Each source is one module behind the same small seam; ``classify`` decides whether a
post is an outage complaint and what it is about; ``spikes`` finds complaint-volume
spikes against a baseline that knows the time of day and the day of the week.
"""
