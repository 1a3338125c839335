// Everything of frugal::nn in one include: modules, layers, initialization, model zoo.
#pragma once

#include "frugal/nn/init.h"
#include "frugal/nn/layers.h"
#include "frugal/nn/module.h"
#include "frugal/nn/sequential.h"
#include "frugal/nn/zoo.h"
