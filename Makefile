# The recipe book: one target per result-table row of the course reports (../shared/seeds).
# `make help` lists them. Extra flags reach the script through ARGS, e.g.
#   make mnist-lenet ARGS="--epochs 1 --device cpu"      make mnist-lenet ARGS=--resume
# Paths may hold spaces: make mnist-lenet DATA_DIR="/data/my data" RUNS="my runs".

PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
DATA_DIR ?= ./data
# CIFAR-10 is read from CIFAR10_DIR/cifar-10-batches-py; with the shared data use
# CIFAR10_DIR=../shared/data/cifar10-jpeg-subset (a 10,000-image subset).
CIFAR10_DIR ?= $(DATA_DIR)
# The scenes are read from SCENES_DIR/scenes, or from SCENES_DIR itself when it holds train/ and
# val/: with the shared data use SCENES_DIR=../shared/data/scenes-subset (1,200 + 600 images).
SCENES_DIR ?= $(DATA_DIR)
# PASCAL VOC 2007 is read from VOC_DIR/VOCdevkit/VOC2007 (make data-voc2007 downloads it).
VOC_DIR ?= $(DATA_DIR)
ARGS ?=
RUNS ?= runs
# NPROC=4 make cifar10-resnet110: the run on 4 GPUs of this machine, one process each (DDP
# through torchrun; the batch is split across them, rank 0 writes the run directory).
NPROC ?=
export DATA_DIR

# A training script, launched by torchrun when NPROC is set
TRAIN = $(if $(NPROC),$(PYTHON) -m torch.distributed.run --standalone --nproc_per_node=$(NPROC),$(PYTHON))
# The targets of many small runs one after the other (the ablations, the sweep) run on one
# process: NPROC is refused there rather than ignored.
ONE_PROCESS = $(if $(NPROC),$(error NPROC=$(NPROC): $@ trains its small runs one after the other in one process; run it without NPROC))

# The run directory is $(RUNS)/<dataset>/<target without the dataset prefix>.
MNIST = $(TRAIN) mnist/train.py --out "$(RUNS)/mnist/$(@:mnist-%=%)"
CIFAR10 = $(TRAIN) cifar10/train.py --out "$(RUNS)/cifar10/$(@:cifar10-%=%)" \
	--data-dir "$(CIFAR10_DIR)"
SCENES = $(TRAIN) scenes/train.py --out "$(RUNS)/scenes/$(@:scenes-%=%)" \
	--data-dir "$(SCENES_DIR)"
YOLO = $(TRAIN) voc2007/train_yolo.py --out "$(RUNS)/voc2007/$(@:voc2007-%=%)" \
	--data-dir "$(VOC_DIR)"
SSD = $(TRAIN) voc2007/train_ssd.py --out "$(RUNS)/voc2007/$(@:voc2007-%=%)" \
	--data-dir "$(VOC_DIR)"
# Report 002 names no mixup alpha. 50 epochs of the scratch ResNet-18 on the scene subset: 75.00%
# at alpha 0.4, 74.00% at 0.2, 73.83% at 1.0 and without mixup (600 val images: +-1.8 points).
MIXUP = --mixup 0.4
# He et al. (2016): lr 0.1, momentum 0.9, weight decay 1e-4, batch 128, 45k/5k split, lr / 10
# at 32k and 48k iterations, stop at 64k. At 352 iterations per epoch (45,000 / 128): decays
# after epochs 91 and 136, stop after 182 (32,032, 47,872 and 64,064 iterations).
PAPER = --lr 0.1 --momentum 0.9 --weight-decay 1e-4 --batch-size 128 --augment flip-crop \
	--val-split 5000 --scheduler multistep --milestones 91 136 --epochs 182

CIFAR10_TARGETS = cifar10-alexnet cifar10-resnet20 cifar10-resnet32 cifar10-resnet44 \
	cifar10-resnet56 cifar10-resnet110 cifar10-resnet18-pretrained cifar10-resnet50-pretrained \
	cifar10-resnet101-pretrained cifar10-model1 cifar10-model2-20ep cifar10-model2-30ep \
	cifar10-model3 cifar10-mlp cifar10-model2-augment-20ep cifar10-model2-augment-40ep \
	cifar10-resnet50-finetune cifar10-lenet cifar10-vgg16 cifar10-vgg19 cifar10-vgg19-pretrained \
	cifar10-resnet20-paper cifar10-resnet32-paper cifar10-resnet44-paper cifar10-resnet56-paper \
	cifar10-resnet110-paper
MNIST_TARGETS = mnist-lenet mnist-alexnet mnist-resnet18-pretrained mnist-model1-sgd \
	mnist-model1-asgd mnist-model1-momentum mnist-model2-10ep mnist-model2-20ep mnist-bn-net \
	mnist-ablations
SCENES_TARGETS = scenes-lenet scenes-custom-lenet scenes-alexnet scenes-resnet18 \
	scenes-resnet18-mixup scenes-resnet18-transfer scenes-resnet50-transfer-mixup \
	scenes-resnet101-transfer-mixup scenes-resnet152-transfer-mixup scenes-lenet-lr-sweep
VOC2007_TARGETS = voc2007-yolo voc2007-yolo-report voc2007-ssd voc2007-ssd-paper
# every result row, in the order make reproduce runs them
REPRODUCE_TARGETS = $(MNIST_TARGETS) $(CIFAR10_TARGETS) $(SCENES_TARGETS) $(VOC2007_TARGETS)
# make reproduce and the *-all targets run each target with --continue, timed, then make report
REPRODUCE = $(PYTHON) -m common.reproduce --runs "$(RUNS)" --args "$(ARGS)"

.PHONY: help install test bench bench-gpu report summaries tensorboard reproduce reproduce-quick clean \
	clean-runs data-mnist data-cifar10 data-scenes data-voc2007 mnist-all cifar10-all scenes-all \
	voc2007-all $(MNIST_TARGETS) $(CIFAR10_TARGETS) $(SCENES_TARGETS) $(VOC2007_TARGETS)

help: ## list the targets and the report rows they reproduce
	@awk 'BEGIN {FS = ":.*## "} \
	     /^##@ / {printf "\n%s\n", substr($$0, 5)} \
	     /^[a-z0-9.-]+:.*## / {printf "  %-28s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Variables (make TARGET VAR=value, or VAR=value make TARGET):"
	@echo "  ARGS      more flags for the script, e.g. ARGS=\"--epochs 1 --device cpu\" or ARGS=--resume"
	@echo "  DATA_DIR  data folder (./data); CIFAR10_DIR, SCENES_DIR, VOC_DIR default to it"
	@echo "  RUNS      where run directories go and make report reads (runs)"
	@echo "  NPROC     GPUs of this machine for one run, through torchrun (NPROC=4 make cifar10-resnet110)"

# A target that is not here: say so and point to the list, instead of make's bare message
.DEFAULT:
	$(error no target '$@' in this Makefile: `make help` lists them)

##@ Set-up and checks
install: ## create .venv and install requirements.txt into it
	python3 -m venv .venv
	.venv/bin/pip install -r requirements.txt

test: ## run the tests (real-data tests need DATA_DIR, e.g. DATA_DIR=../shared/data)
	$(PYTHON) -m pytest -q tests

bench: ## our loops against plain DataLoader loops and the step alone (MNIST, CIFAR-10, scenes; ARGS go to these three); VOC's evaluator, input pipelines and detectors
	$(PYTHON) mnist/bench.py $(ARGS)
	$(PYTHON) cifar10/bench.py --data-dir "$(CIFAR10_DIR)" $(ARGS)
	$(PYTHON) scenes/bench.py --data-dir "$(SCENES_DIR)" $(ARGS)
	$(PYTHON) voc2007/bench_eval.py
	$(PYTHON) voc2007/bench_data.py --device auto
	$(PYTHON) voc2007/bench_train.py

bench-gpu: ## on a GPU, from generated data: CIFAR ResNets' loops against the plain loop and the limit, each network's precision, the detectors' training images/s
	$(PYTHON) -m common.gpu_bench $(ARGS)

report: ## regenerate every result table from $(RUNS)/ into $(RUNS)/REPORT.md and report.png
	$(PYTHON) -m common.report --runs "$(RUNS)" $(ARGS)

summaries: ## every network's layer table and parameter count into $(RUNS)/SUMMARIES.md
	$(PYTHON) -m common.summary --out "$(RUNS)/SUMMARIES.md" $(ARGS)

tensorboard: ## serve the TensorBoard of every run under $(RUNS), each named by its folder (ARGS="--port 6007")
	$(PYTHON) -m common.tensorboard --runs "$(RUNS)" $(ARGS)

clean: ## delete what can be rebuilt: Python caches, $(RUNS)'s REPORT.md, report.png, SUMMARIES.md and TensorBoard links (never a run)
	find common mnist cifar10 scenes voc2007 tests -name __pycache__ -type d -prune \
		-exec rm -rf {} +
	rm -rf .pytest_cache "$(RUNS)/.tensorboard"
	rm -f "$(RUNS)/REPORT.md" "$(RUNS)/report.png" "$(RUNS)/SUMMARIES.md"

clean-runs: ## delete every run under $(RUNS) (weights, checkpoints, metrics), after asking; RUNS=runs-quick for the quick ones
	@printf 'Delete every run under %s: weights, checkpoints and metrics? [y/N] ' "$(RUNS)"; \
	read answer; if [ "$$answer" = y ]; then rm -rf -- "$(RUNS)" && echo "deleted $(RUNS)"; \
	else echo "kept $(RUNS)"; fi

reproduce: ## every row's target in order, each --continue (stop and start again at will), timed; then make report
	$(REPRODUCE) $(REPRODUCE_TARGETS)

reproduce-quick: ## every row's target, tiny and on the CPU, into runs-quick/ (VOC on a generated set); then its report
	$(PYTHON) -m common.reproduce --quick --runs runs-quick --args "$(ARGS)" $(REPRODUCE_TARGETS)

data-mnist: ## download MNIST into DATA_DIR (or check the copy there)
	$(PYTHON) mnist/data.py --data-dir "$(DATA_DIR)"

data-cifar10: ## download CIFAR-10 into CIFAR10_DIR (or check the copy there)
	$(PYTHON) cifar10/data.py --data-dir "$(CIFAR10_DIR)"

data-scenes: ## download the scene split into SCENES_DIR/scenes (or check the copy there)
	$(PYTHON) scenes/data.py --data-dir "$(SCENES_DIR)"

data-voc2007: ## download PASCAL VOC 2007 trainval and test into VOC_DIR (or check the copy there)
	$(PYTHON) voc2007/data.py --data-dir "$(VOC_DIR)"

##@ MNIST, report 000 (table "MNIST Performance"): SGD, lr 0.005, weight decay 1e-4, 30 epochs
mnist-lenet: ## LeNet: batch 64, momentum 0.8 (+ 600 iterations at lr 0.05, lr / 10 after epoch 20)
	$(MNIST) --model lenet $(ARGS)
mnist-alexnet: ## AlexNet with local contrast norm: batch 128, momentum 0.9
	$(MNIST) --model alexnet $(ARGS)
mnist-resnet18-pretrained: ## ResNet-18 from ImageNet weights: batch 64, momentum 0.9
	$(MNIST) --model resnet18 --pretrained $(ARGS)

##@ MNIST, report 001 (Table 1): batch 64, cross-entropy
mnist-model1-sgd: ## run 1: Model-1, 10 epochs, SGD lr 0.01
	$(MNIST) --model model1 --epochs 10 --momentum 0 $(ARGS)
mnist-model1-asgd: ## run 2: Model-1, 10 epochs, ASGD lr 0.001
	$(MNIST) --model model1 --epochs 10 --optimizer asgd --lr 0.001 $(ARGS)
mnist-model1-momentum: ## run 3: Model-1, 10 epochs, SGD lr 0.01 momentum 0.9
	$(MNIST) --model model1 --epochs 10 $(ARGS)
mnist-model2-10ep: ## run 4: Model-2, 10 epochs, SGD lr 0.01 momentum 0.9
	$(MNIST) --model model2 --epochs 10 $(ARGS)
mnist-model2-20ep: ## run 5: Model-2, 20 epochs, SGD lr 0.01 momentum 0.9
	$(MNIST) --model model2 --epochs 20 $(ARGS)

##@ MNIST, report 004
mnist-bn-net: ## Problem 1: MNIST_Net (LeNet-5 + batch norm), Adam lr 1e-3, 10 epochs
	$(MNIST) --model bn_net $(ARGS)
mnist-ablations: ## Problem 2: activation, depth, optimizer, batch norm, MLP/conv/pool table
	$(ONE_PROCESS)$(PYTHON) mnist/ablations.py --out "$(RUNS)/mnist/ablations" $(ARGS)

mnist-all: ## every MNIST row above, one after the other (each --continue, timed)
	$(REPRODUCE) $(MNIST_TARGETS)

##@ CIFAR-10, report 000 (table "CIFAR-10 Performance"): SGD, batch 128, 50 epochs, weight decay 1e-4, flip-crop
cifar10-alexnet: ## AlexNet with local contrast norm: lr 0.005, momentum 0.9
	$(CIFAR10) --model alexnet $(ARGS)
cifar10-resnet20: ## ResNet-20: lr 0.1 cosine, momentum 0.8
	$(CIFAR10) --model resnet20 $(ARGS)
cifar10-resnet32: ## ResNet-32: lr 0.1 cosine, momentum 0.8
	$(CIFAR10) --model resnet32 $(ARGS)
cifar10-resnet44: ## ResNet-44: lr 0.1 cosine, momentum 0.8
	$(CIFAR10) --model resnet44 $(ARGS)
cifar10-resnet56: ## ResNet-56: lr 0.1 cosine, momentum 0.8
	$(CIFAR10) --model resnet56 $(ARGS)
cifar10-resnet110: ## ResNet-110: lr 0.1 cosine (after 400 iterations at 0.01), momentum 0.8
	$(CIFAR10) --model resnet110 $(ARGS)
cifar10-resnet18-pretrained: ## torchvision ResNet-18 from ImageNet, 224x224: lr 0.1 cosine, momentum 0.8
	$(CIFAR10) --model resnet18 --pretrained $(ARGS)
cifar10-resnet50-pretrained: ## torchvision ResNet-50 from ImageNet, 224x224: lr 0.1 cosine, momentum 0.8
	$(CIFAR10) --model resnet50 --pretrained $(ARGS)
cifar10-resnet101-pretrained: ## torchvision ResNet-101 from ImageNet, 224x224: lr 0.1 cosine, momentum 0.8
	$(CIFAR10) --model resnet101 --pretrained $(ARGS)

##@ CIFAR-10, report 001 (Table 2 and Exercises 3-4): SGD lr 0.01, momentum 0.9, batch 64
cifar10-model1: ## run 1: Model-1 (Figure 7), 20 epochs
	$(CIFAR10) --model model1 $(ARGS)
cifar10-model2-20ep: ## run 2: Model-2 (Figure 9), 20 epochs
	$(CIFAR10) --model model2 $(ARGS)
cifar10-model2-30ep: ## run 3: Model-2, 30 epochs
	$(CIFAR10) --model model2 --epochs 30 $(ARGS)
cifar10-model3: ## run 4: Model-3 (Figure 11), 50 epochs
	$(CIFAR10) --model model3 $(ARGS)
cifar10-mlp: ## run 5: "Best Model-3.3" (an MLP stands in), 20 epochs, no momentum
	$(CIFAR10) --model mlp $(ARGS)
cifar10-model2-augment-20ep: ## Exercise 3: Model-2, photometric augmentation, 20 epochs
	$(CIFAR10) --model model2 --augment photometric $(ARGS)
cifar10-model2-augment-40ep: ## Exercise 3: Model-2, photometric augmentation, 40 epochs
	$(CIFAR10) --model model2 --augment photometric --epochs 40 $(ARGS)
cifar10-resnet50-finetune: ## Exercise 4: ImageNet ResNet-50, photometric, 10 epochs, 224x224
	$(CIFAR10) --model resnet50 --pretrained --epochs 10 --lr 0.01 --momentum 0.9 --batch-size 64 \
		--weight-decay 0 --scheduler none --augment photometric $(ARGS)

##@ CIFAR-10, report 003 (PyTorch tutorial recipe: batch 4, momentum 0.9; TensorBoard views)
cifar10-lenet: ## LeNet (Figure 1): lr 0.001, 10 epochs with flip-crop (the report: 2, none)
	$(CIFAR10) --model lenet $(ARGS)
cifar10-vgg16: ## VGG-16 (Figure 8, 1x1 convolutions): Adam lr 1e-4, 3 epochs
	$(CIFAR10) --model vgg16 $(ARGS)

##@ CIFAR-10, report 004 (Problems 3-4): SGD lr 0.01 cosine, momentum 0.9, weight decay 5e-4, flip-crop
cifar10-vgg19: ## VGG-19 as printed, from scratch, 30 epochs
	$(CIFAR10) --model vgg19 $(ARGS)
cifar10-vgg19-pretrained: ## torchvision VGG-19 from ImageNet, 224x224, 10 epochs
	$(CIFAR10) --model vgg19_torchvision --pretrained $(ARGS)

##@ CIFAR-10, He et al. (2016) recipe (beyond the reports): 64k iterations, 45k/5k split
cifar10-resnet20-paper: ## ResNet-20 (paper: 8.75% error)
	$(CIFAR10) --model resnet20 $(PAPER) $(ARGS)
cifar10-resnet32-paper: ## ResNet-32 (paper: 7.51% error)
	$(CIFAR10) --model resnet32 $(PAPER) $(ARGS)
cifar10-resnet44-paper: ## ResNet-44 (paper: 7.17% error)
	$(CIFAR10) --model resnet44 $(PAPER) $(ARGS)
cifar10-resnet56-paper: ## ResNet-56 (paper: 6.97% error)
	$(CIFAR10) --model resnet56 $(PAPER) $(ARGS)
cifar10-resnet110-paper: ## ResNet-110, 400 warm-up iterations at lr 0.01 (paper: 6.43% error)
	$(CIFAR10) --model resnet110 $(PAPER) --warmup-iters 400 --warmup-lr 0.01 $(ARGS)

cifar10-all: ## every CIFAR-10 row above, one after the other (each --continue, timed)
	$(REPRODUCE) $(CIFAR10_TARGETS)

##@ Scenes, report 002 (val accuracy per class): 64x64, SGD, 50 epochs, lr / 2 after 10, 20, 30, 40
scenes-lenet: ## LeNet (0.7945): lr 0.01
	$(SCENES) --model lenet $(ARGS)
scenes-custom-lenet: ## CustomLeNet as printed, no activation between convolutions (0.7546): lr 0.001
	$(SCENES) --model custom_lenet $(ARGS)
scenes-alexnet: ## AlexNet with LRN (0.8541): lr 0.001
	$(SCENES) --model alexnet $(ARGS)
scenes-resnet18: ## ResNet18 from scratch (0.8576): lr 0.01
	$(SCENES) --model resnet18 $(ARGS)
scenes-resnet18-mixup: ## ResNet18 from scratch + mixup alpha 0.4 (0.8835): lr 0.01
	$(SCENES) --model resnet18 $(MIXUP) $(ARGS)
scenes-resnet18-transfer: ## ResNet18 from ImageNet (0.9296): the report's lr 0.001, decay 1e-4
	$(SCENES) --model resnet18 --pretrained --lr 0.001 --weight-decay 1e-4 $(ARGS)
scenes-resnet50-transfer-mixup: ## ResNet50 from ImageNet + mixup 0.4 (0.9431, model not named)
	$(SCENES) --model resnet50 --pretrained $(MIXUP) $(ARGS)
scenes-resnet101-transfer-mixup: ## ResNet101 from ImageNet + mixup 0.4 (0.9431, model not named)
	$(SCENES) --model resnet101 --pretrained $(MIXUP) $(ARGS)
scenes-resnet152-transfer-mixup: ## ResNet152 from ImageNet + mixup 0.4 (0.9431, model not named)
	$(SCENES) --model resnet152 --pretrained $(MIXUP) $(ARGS)
scenes-lenet-lr-sweep: ## LeNet at lr 0.001, 0.002, ..., 0.010 (the report: NaN from 0.007)
	$(ONE_PROCESS)$(PYTHON) scenes/sweep.py --out "$(RUNS)/scenes/$(@:scenes-%=%)" \
		--data-dir "$(SCENES_DIR)" $(ARGS)

scenes-all: ## every scenes row above, one after the other (each --continue, timed)
	$(REPRODUCE) $(SCENES_TARGETS)

##@ PASCAL VOC 2007, report 000 (tables "Pascal VOC 2007 Performance"): per-class AP, VOC07 metric
voc2007-yolo: ## YOLOv1, the paper's recipe on an ImageNet ResNet-50: 600 epochs of trainval at batch 64, about 46,800 iterations (paper: 63.4 mAP with 07+12)
	$(YOLO) $(ARGS)
voc2007-yolo-report: ## YOLOv1, the report's tutorial recipe: Darknet, Adam 2e-5, no augmentation, 600 epochs (96.3 train, 2.6 test)
	$(YOLO) --recipe report $(ARGS)
voc2007-ssd: ## SSD300 from ImageNet VGG-16, the report's batch 8 and lr 0.003, 383 epochs (report: 68.9 mAP)
	$(SSD) $(ARGS)
voc2007-ssd-paper: ## SSD300, the paper's VOC 2007 recipe: batch 32, lr 1e-3, 383 epochs, about 60,000 iterations (paper: 68.0 mAP)
	$(SSD) --recipe paper $(ARGS)

voc2007-all: ## every VOC 2007 row above, one after the other (each --continue, timed)
	$(REPRODUCE) $(VOC2007_TARGETS)
