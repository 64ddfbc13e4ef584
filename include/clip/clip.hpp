// clip/clip.hpp: the whole library in one include.
//
// clip implements OpenAI's CLIP in C++20: tensors with lazy element-wise expressions
// (core/, expr/), the operations CLIP needs behind one dispatch seam (ops/) with a oneDNN CPU
// backend and an Eigen reference backend (backend/), checkpoints (io/), layers and encoders
// (nn/, models/), the tokenizer (text/), image preprocessing (image/), zero-shot
// classification (zeroshot/), embedding search (search/), training data (data/) and training
// (train/: explicit forward/backward per layer, losses, AdamW, checkpoints). Everything public is in namespace clip;
// internals are in clip::detail.
#pragma once

#include "clip/version.hpp"

#include "clip/core/allocator.hpp"
#include "clip/core/device.hpp"
#include "clip/core/dtype.hpp"
#include "clip/core/error.hpp"
#include "clip/core/parallel.hpp"
#include "clip/core/print.hpp"
#include "clip/core/random.hpp"
#include "clip/core/shape.hpp"
#include "clip/core/tensor.hpp"

#include "clip/expr/node.hpp"

#include "clip/ops/reduce.hpp"
#include "clip/ops/rowwise.hpp"
#include "clip/ops/embedding.hpp"
#include "clip/ops/matmul.hpp"
#include "clip/ops/conv.hpp"
#include "clip/ops/attention.hpp"

#include "clip/io/fingerprint.hpp"
#include "clip/io/safetensors.hpp"

#include "clip/image/preprocess.hpp"
#include "clip/image/encode.hpp"
#include "clip/image/caption_grid.hpp"

#include "clip/text/tokenizer.hpp"

#include "clip/models/clip_model.hpp"

#include "clip/zeroshot/templates.hpp"
#include "clip/zeroshot/classifier.hpp"

#include "clip/search/exact.hpp"
#include "clip/search/hnsw.hpp"
#include "clip/search/index.hpp"

#include "clip/data/dataset.hpp"
#include "clip/data/csv.hpp"
#include "clip/data/webdataset.hpp"
#include "clip/data/synthetic.hpp"
#include "clip/data/augment.hpp"
#include "clip/data/loader.hpp"

#include "clip/train/model.hpp"
#include "clip/train/checkpoint.hpp"
#include "clip/train/adamw.hpp"
#include "clip/train/schedule.hpp"
#include "clip/train/grad_clip.hpp"
