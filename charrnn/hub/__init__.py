"""charrnn and the Hugging Face Hub.

    reach.py     whether the Hub answers (below everything that downloads or uploads)
    resolve.py   a Hub id to a checkpoint folder in the cache; load by id or path; the app's listed models
    card.py      the model card pushed with a model
    push.py      push a checkpoint (and optionally its run's state) with its card

Nothing is imported here: `charrnn.hub.reach` is used by the data readers, which must not pull in pushing
(and through it sampling and torch).
"""
