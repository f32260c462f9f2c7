"""TensorBoard logging under <run>/tb: scalars, the model graph, hparams, one PR curve per class
and an embedding projector of test-set features (the views report 003 shows or tried to)."""
import warnings
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter


def open_writer(run_dir):
    return SummaryWriter(log_dir=str(Path(run_dir) / "tb"))


def log_graph(writer, model, example_images):
    """The model graph (Graphs tab), traced once in eval mode so that no batch-norm statistics
    or random numbers are spent on it."""
    was_training = model.training
    model.eval()
    with warnings.catch_warnings():   # add_graph still traces with the deprecated torch.jit
        warnings.simplefilter("ignore", FutureWarning)
        writer.add_graph(model, example_images)
    model.train(was_training)


def log_epoch(writer, record, split, step_losses):
    """Per-epoch losses, accuracies and lr; every step's training loss on `loss/train_step`."""
    epoch = record["epoch"]
    first_step = (epoch - 1) * len(step_losses) + 1
    for offset, loss in enumerate(step_losses.tolist()):
        writer.add_scalar("loss/train_step", loss, first_step + offset)
    writer.add_scalar("loss/train", record["train_loss"], epoch)
    writer.add_scalar(f"loss/{split}", record[f"{split}_loss"], epoch)
    writer.add_scalar("accuracy/train", record["train_accuracy"], epoch)
    writer.add_scalar(f"accuracy/{split}", record[f"{split}_accuracy"], epoch)
    writer.add_scalar("lr", record["lr"], epoch)
    writer.flush()


def log_pr_curves(writer, probabilities, labels, classes, step):
    for index, name in enumerate(classes):
        writer.add_pr_curve(f"pr/{name}", labels == index, probabilities[:, index],
                            global_step=step)


def log_embedding(writer, features, labels, images, classes, step):
    """Projector tab: penultimate-layer features with their images and class names."""
    images = images.float() / 255
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    writer.add_embedding(features, metadata=[classes[label] for label in labels.tolist()],
                         label_img=images, global_step=step, tag="test_features")


def log_hparams(writer, args, final_metrics):
    """HParams tab: the run's flags against its final figures."""
    def scalar(value):
        return value if isinstance(value, (int, float, str, bool)) else str(value)
    hparams = {key: scalar(value) for key, value in vars(args).items()}
    writer.add_hparams(hparams, {f"hparam/{key}": value for key, value in final_metrics.items()},
                       run_name=".")
    writer.flush()

