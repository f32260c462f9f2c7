"""Classification figures computed from a confusion matrix or from class probabilities."""
import numpy as np
import torch


def per_class_accuracy(confusion):
    """Recall of each class: correct / images of that class (rows are the true classes)."""
    confusion = torch.as_tensor(confusion, dtype=torch.float64)
    return (confusion.diag() / confusion.sum(1).clamp(min=1)).tolist()


def per_class_precision(confusion):
    confusion = torch.as_tensor(confusion, dtype=torch.float64)
    return (confusion.diag() / confusion.sum(0).clamp(min=1)).tolist()


def most_confused_pair(confusion):
    """(true class, predicted class, count) of the largest off-diagonal entry."""
    off_diagonal = torch.as_tensor(confusion).clone()
    off_diagonal.fill_diagonal_(-1)
    flat = int(off_diagonal.argmax())
    true, predicted = divmod(flat, off_diagonal.shape[1])
    return true, predicted, int(off_diagonal[true, predicted])


def precision_recall_curve(scores, positives):
    """Precision and recall at every score threshold, highest score first."""
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    order = np.argsort(-scores, kind="stable")
    true_positives = np.cumsum(positives[order])
    ranked = np.arange(1, len(scores) + 1)
    precision = true_positives / ranked
    recall = true_positives / max(int(positives.sum()), 1)
    return precision, recall


def average_precision(precision, recall):
    """Area under the precision-recall curve, with precision made monotone (all-point AP,
    as in PASCAL VOC from 2010 on)."""
    precision = np.concatenate([[0.0], precision, [0.0]])
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def most_confident_mistakes(probabilities, labels, count):
    """Indices of the `count` wrong predictions made with the highest probability."""
    probabilities = torch.as_tensor(probabilities)
    labels = torch.as_tensor(labels)
    confidence, predicted = probabilities.max(1)
    wrong = (predicted != labels).nonzero().flatten()
    order = confidence[wrong].argsort(descending=True)
    return wrong[order[:count]].tolist()
