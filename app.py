"""Gradio app (placeholder until the demo lands): python app.py"""
import gradio as gr

import sr

with gr.Blocks(title="Microscopy SR") as demo:
    gr.Markdown("# 4x super-resolution for fluorescence microscopy")
    gr.JSON(value=[m["id"] for m in sr.list_models()])

if __name__ == "__main__":
    demo.launch()
