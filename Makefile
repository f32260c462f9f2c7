# The recipe book: one target per result-table row of the course reports (../shared/seeds).
# `make help` lists them. Extra flags reach the script through ARGS, e.g.
#   make mnist-lenet ARGS="--epochs 1 --device cpu"      make mnist-lenet ARGS=--resume

PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
DATA_DIR ?= ./data
# CIFAR-10 is read from CIFAR10_DIR/cifar-10-batches-py; with the shared data use
# CIFAR10_DIR=../shared/data/cifar10-jpeg-subset (a 10,000-image subset).
CIFAR10_DIR ?= $(DATA_DIR)
ARGS ?=
export DATA_DIR

# The run directory is runs/<dataset>/<target without the dataset prefix>.
MNIST = $(PYTHON) mnist/train.py --out runs/mnist/$(@:mnist-%=%)
CIFAR10 = $(PYTHON) cifar10/train.py --out runs/cifar10/$(@:cifar10-%=%) --data-dir $(CIFAR10_DIR)
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

.PHONY: help install test bench report data-mnist data-cifar10 mnist-all cifar10-all \
	$(MNIST_TARGETS) $(CIFAR10_TARGETS)

help: ## list the targets and the report rows they reproduce
	@awk 'BEGIN {FS = ":.*## "} \
	     /^##@ / {printf "\n%s\n", substr($$0, 5)} \
	     /^[a-z0-9.-]+:.*## / {printf "  %-28s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

##@ Set-up and checks
install: ## create .venv and install requirements.txt into it
	python3 -m venv .venv
	.venv/bin/pip install -r requirements.txt

test: ## run the tests (real-data tests need DATA_DIR, e.g. DATA_DIR=../shared/data)
	$(PYTHON) -m pytest -q tests

bench: ## time our loop against a plain DataLoader loop (MNIST LeNet, CIFAR-10 ResNet-20/110)
	$(PYTHON) mnist/bench.py $(ARGS)
	$(PYTHON) cifar10/bench.py $(ARGS)

report: ## regenerate every result table from runs/ into runs/REPORT.md
	$(PYTHON) -m common.report $(ARGS)

data-mnist: ## download MNIST into DATA_DIR (or check the copy there)
	$(PYTHON) mnist/data.py --data-dir $(DATA_DIR)

data-cifar10: ## download CIFAR-10 into CIFAR10_DIR (or check the copy there)
	$(PYTHON) cifar10/data.py --data-dir $(CIFAR10_DIR)

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
	$(PYTHON) mnist/ablations.py $(ARGS)

mnist-all: $(MNIST_TARGETS) ## every MNIST row above, one after the other

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

cifar10-all: $(CIFAR10_TARGETS) ## every CIFAR-10 row above, one after the other
