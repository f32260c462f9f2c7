"""The detectors of report 000's PASCAL VOC 2007 rows by name, as the other datasets'
registries, for `make summaries`: YOLOv1 on each backbone (voc2007/yolo.py) and SSD in each
configuration (voc2007/ssd.py). The training scripts choose among the same with --model."""
from functools import partial

from voc2007.ssd import CONFIGS, build_ssd
from voc2007.yolo import BACKBONES, IMAGE_SIZES, build_yolo

MODELS = {**{f"yolo-{backbone}": partial(build_yolo, backbone) for backbone in BACKBONES},
          **{f"ssd-{config}": partial(build_ssd, config) for config in CONFIGS}}
INPUT_SIZE = {**{f"yolo-{backbone}": size for backbone, size in IMAGE_SIZES.items()},
              "ssd-ssd300": 300, "ssd-tiny": 64}
