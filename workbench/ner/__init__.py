"""NER fine-tuning: read CoNLL data, align labels, batch, train with Accelerate, evaluate, save.

Entry points: `train/ner.py` (also under `accelerate launch`) and `workbench train`; both call
`workbench.ner.train.main(argv)`.
"""
