// Everything of frugal::optim in one include: optimizers, parameter groups, clipping, schedules,
// dynamic loss scaling.
#pragma once

#include "frugal/optim/loss_scaler.h"
#include "frugal/optim/optimizer.h"
#include "frugal/optim/schedule.h"
