# The recipe book: one target per result-table row of the course reports (../shared/seeds).
# `make help` lists them. Extra flags reach the script through ARGS, e.g.
#   make mnist-lenet ARGS="--epochs 1 --device cpu"      make mnist-lenet ARGS=--resume

PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
DATA_DIR ?= ./data
ARGS ?=
export DATA_DIR

# The run directory is runs/<dataset>/<target without the dataset prefix>.
MNIST = $(PYTHON) mnist/train.py --out runs/mnist/$(@:mnist-%=%)

MNIST_TARGETS = mnist-lenet mnist-alexnet mnist-resnet18-pretrained mnist-model1-sgd \
	mnist-model1-asgd mnist-model1-momentum mnist-model2-10ep mnist-model2-20ep mnist-bn-net \
	mnist-ablations

.PHONY: help install test bench report data-mnist mnist-all $(MNIST_TARGETS)

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

bench: ## time our on-device loop against a plain DataLoader loop, same model and data
	$(PYTHON) mnist/bench.py $(ARGS)

report: ## regenerate every result table from runs/ into runs/REPORT.md
	$(PYTHON) -m common.report $(ARGS)

data-mnist: ## download MNIST into DATA_DIR (or check the copy there)
	$(PYTHON) mnist/data.py --data-dir $(DATA_DIR)

##@ MNIST, report 000 (table "MNIST Performance"): SGD, lr 0.005, weight decay 1e-4, 30 epochs
mnist-lenet: ## LeNet: batch 64, momentum 0.8 (+ kick-start: 600 iterations at lr 0.05)
	$(MNIST) --model lenet $(ARGS)
mnist-alexnet: ## AlexNet with local contrast norm: batch 128, momentum 0.9
	$(MNIST) --model alexnet $(ARGS)
mnist-resnet18-pretrained: ## ResNet-18 from ImageNet weights: batch 64, momentum 0.9
	$(MNIST) --model resnet18 --pretrained $(ARGS)

##@ MNIST, report 001 (Table 1): batch 64, cross-entropy
mnist-model1-sgd: ## run 1: Model-1, 10 epochs, SGD lr 0.01
	$(MNIST) --model model1 --epochs 10 --momentum 0 $(ARGS)
mnist-model1-asgd: ## run 2: Model-1, 10 epochs, ASGD lr 0.001
	$(MNIST) --model model1 --epochs 10 --optimizer asgd --lr 0.001 --momentum 0 $(ARGS)
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
