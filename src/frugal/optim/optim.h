// Everything of frugal::optim in one include: optimizers, parameter groups, clipping, schedules.
#pragma once

#include "frugal/optim/optimizer.h"
#include "frugal/optim/schedule.h"
