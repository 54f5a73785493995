/* A stand-in libnvidia-ml.so.1 for tests: H100s that exist only here.
 *
 * pynvml loads it through its real ctypes path, so the tests exercise the
 * same calls and error mapping as on a GPU host.  Knobs (environment):
 *   FAKE_NVML_INIT_RC  return code of nvmlInitWithFlags (9 = driver not loaded)
 *   FAKE_NVML_COUNT    number of GPUs (default 1)
 *   FAKE_NVML_BUS      PCI bus of GPU 0, hex (default 3b); GPU n is on bus+n
 *   FAKE_NVML_MIG_GPU  index of the GPU with MIG mode enabled (default: none)
 *   FAKE_NVML_LOST_GPU index of a GPU that has fallen off the bus (default: none)
 *   FAKE_NVML_NVENC    NVENC codecs, a bit mask: 1 H.264, 2 HEVC, 4 AV1 (default 0:
 *                      an H100 has no NVENC, and NVML says NOT_SUPPORTED)
 * Struct layouts follow nvml.h.  nvmlDeviceGetNumaNodeId is left out on
 * purpose: older drivers lack it, and detection must cope.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;
typedef void *nvmlDevice_t;

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NO_PERMISSION = 4,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_GPU_IS_LOST = 15,
};

typedef struct {
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;

#define MAX_GPUS 8
static int slots[MAX_GPUS]; /* handle of GPU i is &slots[i] */
static int initialised;

static int knob(const char *name, int fallback, int base)
{
    const char *s = getenv(name);
    return s && *s ? (int)strtol(s, NULL, base) : fallback;
}

static int count(void)
{
    int n = knob("FAKE_NVML_COUNT", 1, 10);
    return n < 0 ? 0 : n > MAX_GPUS ? MAX_GPUS : n;
}

static int index_of(nvmlDevice_t h)
{
    int i = (int)((int *)h - slots);
    return (i >= 0 && i < count()) ? i : -1;
}

static nvmlReturn_t copy(char *out, unsigned int len, const char *text)
{
    if (strlen(text) + 1 > len)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, text);
    return NVML_SUCCESS;
}

#define CHECK(h)                                                                                   \
    if (!initialised)                                                                              \
        return NVML_ERROR_UNINITIALIZED;                                                           \
    if (index_of(h) < 0)                                                                           \
        return NVML_ERROR_INVALID_ARGUMENT;

nvmlReturn_t nvmlInitWithFlags(unsigned int flags)
{
    (void)flags;
    int rc = knob("FAKE_NVML_INIT_RC", 0, 10);
    initialised = rc == 0;
    return rc;
}

nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }

nvmlReturn_t nvmlShutdown(void)
{
    initialised = 0;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t rc)
{
    switch (rc) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int len)
{
    return copy(version, len, "550.54.15");
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *version)
{
    *version = 12040;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version) { return nvmlSystemGetCudaDriverVersion(version); }

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *n)
{
    if (!initialised)
        return NVML_ERROR_UNINITIALIZED;
    *n = (unsigned int)count();
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *h)
{
    if (!initialised)
        return NVML_ERROR_UNINITIALIZED;
    if ((int)i >= count())
        return NVML_ERROR_INVALID_ARGUMENT;
    if ((int)i == knob("FAKE_NVML_LOST_GPU", -1, 10))
        return NVML_ERROR_GPU_IS_LOST;
    *h = &slots[i];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t h, char *name, unsigned int len)
{
    CHECK(h);
    return copy(name, len, "NVIDIA H100 PCIe");
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t h, char *uuid, unsigned int len)
{
    CHECK(h);
    char text[64];
    snprintf(text, sizeof text, "GPU-6e2ae7a1-8c1e-4d6b-9f3a-00000000000%d", index_of(h));
    return copy(uuid, len, text);
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t h, nvmlPciInfo_t *p)
{
    CHECK(h);
    memset(p, 0, sizeof *p);
    p->bus = (unsigned int)(knob("FAKE_NVML_BUS", 0x3b, 16) + index_of(h));
    p->pciDeviceId = 0x233010de;
    p->pciSubSystemId = 0x16c110de;
    snprintf(p->busIdLegacy, sizeof p->busIdLegacy, "0000:%02X:00.0", p->bus);
    snprintf(p->busId, sizeof p->busId, "00000000:%02X:00.0", p->bus);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t h, nvmlMemory_t *m)
{
    CHECK(h);
    m->total = 81559ULL << 20; /* what an 80 GB H100 PCIe reports */
    m->used = 1ULL << 20;
    m->free = m->total - m->used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t h, int *major, int *minor)
{
    CHECK(h);
    *major = 9;
    *minor = 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t h, unsigned int *current, unsigned int *pending)
{
    CHECK(h);
    *current = *pending = index_of(h) == knob("FAKE_NVML_MIG_GPU", -1, 10);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEncoderCapacity(nvmlDevice_t h, int query, unsigned int *capacity)
{
    CHECK(h);
    if (query < 0 || query > 2)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (!(knob("FAKE_NVML_NVENC", 0, 10) & (1 << query)))
        return NVML_ERROR_NOT_SUPPORTED;
    *capacity = 100; /* percent of the encoder free */
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t h, unsigned int *minor)
{
    CHECK(h);
    *minor = (unsigned int)index_of(h);
    return NVML_SUCCESS;
}
