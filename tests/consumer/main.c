/* Clusters four points into two clusters through the installed library. */
#include <flashkm.h>
#include <stdio.h>

int main(void)
{
    const float X[8] = {0, 0, 0, 1, 10, 10, 10, 11};
    const float init[4] = {0, 0, 10, 10};
    float C[4];
    int32_t labels[4];
    fkm_ctx *ctx;
    if (fkm_create(&ctx, FKM_BACKEND_CPU) != FKM_OK) return 1;
    fkm_params p = fkm_params_default();
    p.k = 2;
    p.init = FKM_INIT_USER;
    p.init_centroids = init;
    fkm_status s = fkm_fit(ctx, &p, X, FKM_F32, 4, 2, 2, NULL, C, labels, NULL);
    fkm_destroy(ctx);
    if (s != FKM_OK || labels[0] != 0 || labels[1] != 0 || labels[2] != 1 || labels[3] != 1 ||
        C[1] != 0.5f || C[3] != 10.5f)
        return 1;
    printf("consumer: ok (%s)\n", fkm_version());
    return 0;
}
