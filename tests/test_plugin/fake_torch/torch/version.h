// Stands in for the headers of another LibTorch (0.1.0) in the handshake test.
#pragma once
#define TORCH_VERSION_MAJOR 0
#define TORCH_VERSION_MINOR 1
#define TORCH_VERSION_PATCH 0
