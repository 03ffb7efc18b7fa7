#include "anchors.h"

#include <math.h>

void ssdf_anchors(const ssdf_model *m, float *anchors) {
    int n = 0;
    for (int i = 0; i < m->n_grids; i++) {
        const ssdf_anchor_grid *a = &m->grids[i];
        const int grid = a->size;
        for (int y = 0; y < grid; y++)
            for (int x = 0; x < grid; x++)
                for (int k = 0; k < a->per_cell; k++, n++) {
                    anchors[4 * n + 0] = (float)((y + 0.5) / grid);
                    anchors[4 * n + 1] = (float)((x + 0.5) / grid);
                    anchors[4 * n + 2] = (float)(a->scale[k] / sqrt(a->ratio[k]));
                    anchors[4 * n + 3] = (float)(a->scale[k] * sqrt(a->ratio[k]));
                }
    }
}
