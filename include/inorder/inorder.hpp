// inorder/inorder.hpp: the umbrella header. Includes every public header.
#pragma once

#include "inorder/codec.hpp"
#include "inorder/errors.hpp"
#include "inorder/options.hpp"
#include "inorder/parallel_queue.hpp"
#include "inorder/pipe.hpp"
#include "inorder/pool.hpp"
#include "inorder/reconnect.hpp"
#include "inorder/settled.hpp"
#include "inorder/share.hpp"
#include "inorder/skprocess.hpp"
#include "inorder/stats.hpp"
