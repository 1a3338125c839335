// frugal::data in one include: readers (idx, csv, npy, text), in-memory datasets and the loaders.
#pragma once

#include "frugal/data/dataset.h"
#include "frugal/data/loader.h"
#include "frugal/data/readers.h"
