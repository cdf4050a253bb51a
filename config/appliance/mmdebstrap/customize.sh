#!/bin/sh
# mmdebstrap --customize-hook for the appliance (see ../packages.list). $1 is the new
# root; the rig sets KVER and MODULES_DIR (the kernel's unpacked modules).
#
# 1. The kernel's modules go into /usr/lib/modules, so /usr is the whole OS.
# 2. dracut builds the initrd inside the root, from the same package set: systemd as
#    PID 1 with what usrhash= (veritysetup + fstab generators), the TPM2-bound LUKS2
#    root (systemd-cryptsetup and its tpm2 token module) and osimage firstboot
#    (mkfs.btrfs, and dm_integrity with loop for an Integrity=inline volume, whose
#    superblock the kernel formats on a loop device over a staging file) need. The rig adds a second cpio with osimage and its unit.
#    systemd-pcrphase extends PCR 11 with "enter-initrd" first thing: the UKI's
#    .pcrsig signs the PCR 11 values of the boot phases from there on (systemd-measure's
#    default phases), so without it the TPM2 token cannot be unsealed.
#    virtio_rng feeds the kernel's pool from the rig's virtio-rng-pci device, so
#    firstboot's blocking getrandom() for the LUKS keys does not wait on jitter entropy.
# hermetic.sh runs after mmdebstrap has finished with the tree (it still needs /etc
# and /var for its own clean-up when this hook returns).
set -eu
root="$1"

mkdir -p "$root/usr/lib/modules"
rm -rf "$root/usr/lib/modules/$KVER"
cp -a "$MODULES_DIR" "$root/usr/lib/modules/$KVER"

chroot "$root" dracut --quiet --force --no-hostonly --no-hostonly-cmdline \
    --kver "$KVER" --compress zstd \
    --modules "base systemd systemd-initrd systemd-pcrphase systemd-udevd systemd-journald systemd-tmpfiles systemd-sysusers systemd-veritysetup dracut-systemd udev-rules kernel-modules dm crypt tpm2-tss btrfs rootfs-block fs-lib" \
    --add-drivers "virtio_blk virtio_pci virtio_gpu virtio_rng dm_verity dm_crypt dm_integrity authenc xts loop erofs btrfs tpm_crb efivarfs" \
    --install "/usr/sbin/mkfs.btrfs /usr/sbin/mkfs.ext4 /usr/sbin/mkswap /usr/bin/udevadm" \
    /initrd.img
