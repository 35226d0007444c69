// SPDX-License-Identifier: GPL-2.0
/*
 * tessera_virtio_mmio: registers "virtio-mmio" platform devices from a module parameter, for
 * kernels built without CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES (Debian's cloud kernel).
 *
 * Nitro, and QEMU's nitro-enclave machine, describe the enclave's virtio-mmio devices (the NSM
 * and vsock) on the kernel command line as virtio_mmio.device=<size>@<base>:<irq>. tessera-init
 * passes those values here as device=<size>@<base>:<irq>[,...]; the virtio_mmio driver then
 * binds each device as it would have with the command-line option built in.
 */
#include <linux/init.h>
#include <linux/ioport.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/platform_device.h>

#define MAX_DEVICES 8

static char *device[MAX_DEVICES];
static int ndevices;
module_param_array(device, charp, &ndevices, 0444);
MODULE_PARM_DESC(device, "virtio-mmio devices as <size>@<base>:<irq>, comma-separated");

static struct platform_device *registered[MAX_DEVICES];
static int nregistered;

static int parse(const char *spec, struct resource res[2])
{
	char *rest;
	unsigned long long size, base;
	unsigned int irq;
	int consumed = 0;

	size = memparse(spec, &rest);
	if (!size || *rest != '@')
		return -EINVAL;
	if (sscanf(rest, "@%lli:%u%n", &base, &irq, &consumed) != 2 || rest[consumed] != '\0')
		return -EINVAL;
	memset(res, 0, 2 * sizeof(*res));
	res[0].flags = IORESOURCE_MEM;
	res[0].start = base;
	res[0].end = base + size - 1;
	res[1].flags = IORESOURCE_IRQ;
	res[1].start = irq;
	res[1].end = irq;
	return 0;
}

static void unregister_all(void)
{
	while (nregistered > 0)
		platform_device_unregister(registered[--nregistered]);
}

static int __init tessera_virtio_mmio_init(void)
{
	int i;

	for (i = 0; i < ndevices; i++) {
		struct resource res[2];
		struct platform_device *pdev;

		if (parse(device[i], res)) {
			pr_err("tessera_virtio_mmio: cannot parse device %s\n", device[i]);
			unregister_all();
			return -EINVAL;
		}
		pdev = platform_device_register_resndata(NULL, "virtio-mmio", PLATFORM_DEVID_AUTO,
							 res, 2, NULL, 0);
		if (IS_ERR(pdev)) {
			unregister_all();
			return PTR_ERR(pdev);
		}
		registered[nregistered++] = pdev;
		pr_info("tessera_virtio_mmio: registered %pR irq %llu\n", &res[0], res[1].start);
	}
	return 0;
}

static void __exit tessera_virtio_mmio_exit(void)
{
	unregister_all();
}

module_init(tessera_virtio_mmio_init);
module_exit(tessera_virtio_mmio_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("virtio-mmio devices from a module parameter (Tessera enclave image)");
