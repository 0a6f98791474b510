"""The Gradio app, one module per job (``app.py`` only starts it).

* ``ui``: the tabs assembled into one ``gr.Blocks`` and the launch;
  ``compare_tab``, ``zoo_tab``, ``live_tab``, ``mos_tab``: one module per tab.
* ``comparison``: one run of several models on one image (``runstate`` reads its state);
  ``roi``: zoomed regions and the comparison figure; ``single``: one model, one image.
* ``inputs``: reading and checking uploads; ``workspace``: per-run temporary folders;
  ``security``: the guard that keeps the server from fetching client URLs;
  ``models``: the zoo as the app shows it; ``examples``; ``config``; ``errors``.

Nothing here is imported by the rest of ``sr`` except evaluation figures.
"""
