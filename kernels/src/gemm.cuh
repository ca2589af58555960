// The register-tiled float32 GEMM tile shared by the attention baselines (attention.cu) and the model forward
// (forward.cu): 64 x 64 outputs per block of 256 threads, 4 x 4 per thread, 16 inner steps per shared-memory tile.
#pragma once

#define CSA_GEMM_TILE 64
#define CSA_GEMM_STEP 16

// acc (thread's 4 x 4: rows rowTile + ty + 16 i, columns colTile + tx + 16 j, tx = thread % 16, ty = thread / 16) =
// sum over inner k in [k0, k1) of a[row * lda + k] * B(k, col), with B(k, col) = b[col * ldb + k] when bTransposed
// (the keys as K^T), b[k * ldb + col] otherwise (the values). 256 threads.
__device__ void csa_gemm_tile(const float* a, int lda, int rows, const float* b, int ldb, int cols, bool bTransposed,
                              int k0, int k1, int rowTile, int colTile, float acc[4][4]) {
    __shared__ float aTile[CSA_GEMM_STEP][CSA_GEMM_TILE];
    __shared__ float bTile[CSA_GEMM_STEP][CSA_GEMM_TILE];
    int tx = threadIdx.x & 15;
    int ty = threadIdx.x >> 4;
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 4; j++) {
            acc[i][j] = 0.0f;
        }
    }
    for (int k = k0; k < k1; k += CSA_GEMM_STEP) {
        for (int x = threadIdx.x; x < CSA_GEMM_STEP * CSA_GEMM_TILE; x += blockDim.x) {
            // consecutive threads read consecutive floats of a row of a (and of K when transposed)
            int r = x / CSA_GEMM_STEP;
            int kk = x % CSA_GEMM_STEP;
            int row = rowTile + r;
            aTile[kk][r] = row < rows && k + kk < k1 ? a[(long long) row * lda + k + kk] : 0.0f;
            if (bTransposed) {
                int col = colTile + r;
                bTile[kk][r] = col < cols && k + kk < k1 ? b[(long long) col * ldb + k + kk] : 0.0f;
            } else {
                int c = x % CSA_GEMM_TILE;
                int kr = x / CSA_GEMM_TILE;
                int col = colTile + c;
                bTile[kr][c] = col < cols && k + kr < k1 ? b[(long long) (k + kr) * ldb + col] : 0.0f;
            }
        }
        __syncthreads();
        for (int kk = 0; kk < CSA_GEMM_STEP; kk++) {
            float av[4];
            float bv[4];
            for (int i = 0; i < 4; i++) {
                av[i] = aTile[kk][ty + 16 * i];
                bv[i] = bTile[kk][tx + 16 * i];
            }
            for (int i = 0; i < 4; i++) {
                for (int j = 0; j < 4; j++) {
                    acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
                }
            }
        }
        __syncthreads();
    }
}

