// frugal::data in one include: readers (idx, csv, npy, text), in-memory datasets, packed shards and
// the loaders.
#pragma once

#include "frugal/data/dataset.h"
#include "frugal/data/loader.h"
#include "frugal/data/packed.h"
#include "frugal/data/readers.h"
#include "frugal/data/sample_source.h"
