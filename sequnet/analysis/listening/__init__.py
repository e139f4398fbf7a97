"""The paper's listening test (§5.2, Figure 3): blinded A/B items, a Jupyter session, a kernel-free page, analysis.

One module per concern; this package re-exports their public names (``listening.make_items(...)``):

* ``generation``: writing an item folder, from two trained models and the test audio (``make_items``: real
  primes, both models' continuations) or from audio (``write_items``: random clip names, a manifest that names no
  model, the key);
* ``items``: reading an item folder (``load_items``, ``find_items``) and each participant's A/B order
  (``presentation``, ``blind_hash``);
* ``key``: which clip is which model (``load_key``; ``listening_key.json`` beside the items, never published);
* ``responses``: the response format (``RESPONSE_SCHEMA``, validated with ``jsonschema``), reading response files
  with limits checked before parsing and against the item set (``load_responses``), writing one
  (``response_document``, ``save_response``);
* ``stats``: ``summarise`` (one vote per participant and item, clips mapped to models through the key) and
  ``binomial_test`` (exact test and Wilson interval per question);
* ``plots``: ``plot_figure3``, the paper's Figure 3, and ``plot_clip_stability``, noise over time per model;
* ``widgets``: ``listening_session``, the test as ipywidgets in Jupyter;
* ``page``: the test as a self-contained HTML page (``export_static_page``, ``static_page_fragment``), built from
  the package files ``page.html``, ``page.css`` and ``page.js``.

The package knows no repository paths: callers pass the items folder, the responses folder and the output folder
(the notebook passes ``data/listening`` of the repository).
"""
from sequnet.analysis.listening.common import (ANSWER_LABELS, ANSWERS, ITEM_ID_PATTERN, MODEL_NAMES, MODELS,
                                               QUESTION_LABELS, QUESTION_TEXT, QUESTIONS, JSONLimitError,
                                               ListeningError, ResponseError, check_participant, json_depth,
                                               participant_key, read_json)
from sequnet.analysis.listening.generation import make_items, write_items
from sequnet.analysis.listening.items import (AUDIO_FORMATS, CLIP_NAME_PATTERN, DEFAULT_ITEMS_DIR, ITEMS_MANIFEST,
                                              ITEMS_SCHEMA_TAG, ITEMS_SUBDIR, Item, ItemSet, Trial, blind_hash,
                                              find_items, load_items, presentation, publish_audio)
from sequnet.analysis.listening.key import KEY_FILE, KEY_SCHEMA_TAG, Key, load_key, write_key
from sequnet.analysis.listening.page import (book_audio_dir, export_static_page, static_page_fragment,
                                             static_page_html)
from sequnet.analysis.listening.plots import FIGURE3_COLOURS, plot_clip_stability, plot_figure3
from sequnet.analysis.listening.responses import (MAX_ITEMS_PER_RESPONSE, MAX_RESPONSE_BYTES, MAX_RESPONSE_DEPTH,
                                                  RESPONSE_SCHEMA, SCHEMA_TAG, check_response, item_set_problems,
                                                  load_responses, read_response, response_document,
                                                  response_filename, response_problems, save_response)
from sequnet.analysis.listening.stats import CHOICES, BinomialResult, Duplicate, Summary, binomial_test, summarise
from sequnet.analysis.listening.widgets import listening_session

__all__ = [name for name in dir() if not name.startswith("_")]
