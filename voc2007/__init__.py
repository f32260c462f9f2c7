"""PASCAL VOC 2007 detection experiments: YOLOv1 and SSD300."""
