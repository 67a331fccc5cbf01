"""The numbers the paper reports, to print beside ours."""

PAPER_TITLE = (
    "Optimizing Convolutional Neural Networks for Image Classification "
    "through Advanced Gradient Descent Techniques"
)
PAPER_AUTHORS = "Ravi Tej Chaparala and Srivatsa Tenneti"

#: Test accuracy (%) of the baseline CNN after 10 epochs.
PAPER_BASELINE = 70.71

#: Table 1: initial and final test accuracy (%) and the key adjustments per optimizer.
PAPER_TABLE1 = {
    "adam": {
        "initial": 72.07,
        "final": 85.50,
        "key_adjustments": "Learning rate scheduling, batch normalization, dropout",
    },
    "sgd": {
        "initial": 61.65,
        "final": 83.30,
        "key_adjustments": "Momentum, learning rate scheduling, dropout",
    },
    "rmsprop": {
        "initial": 70.88,
        "final": 84.50,
        "key_adjustments": "Decay adjustments, learning rate scheduling, dropout",
    },
    "adamax": {
        "initial": 70.99,
        "final": 84.79,
        "key_adjustments": "Tailored learning rate settings, dropout",
    },
}

#: The paper's test accuracy (%) by the arm of the study (optimizer/variant, as the claims name
#: runs) that reproduces it: the baseline (trained with Adam) and Table 1's initial and final.
PAPER_ACCURACY = {
    "adam/baseline": PAPER_BASELINE,
    **{f"{optimizer}/{cycle}": row[cycle] for optimizer, row in PAPER_TABLE1.items()
       for cycle in ("initial", "final")},
}
