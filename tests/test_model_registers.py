"""Register semantics of the model, one behaviour per test (datasheet section 8.2.3)."""
import time

import pytest

from wirecap import ixgbe as r
from wirecap.sim import Device, ModelError, TrafficProfile


def settle(dev):
    time.sleep((dev.reset_delay_ns + dev.link_delay_ns) / 1e9 + 0.002)


def test_ctrl_rst_self_clears_and_resets_registers(dev):
    settle(dev)
    dev.write32(r.FCTRL, r.FCTRL_UPE)
    dev.write32(r.RETA(3), 0x01020304)
    dev.write32(r.CTRL, r.CTRL_RST)
    assert dev.read32(r.CTRL) & r.CTRL_RST, "RST reads 1 while the reset is in progress"
    assert dev.read32(r.FCTRL) == 0 and dev.read32(r.RETA(3)) == 0
    settle(dev)
    assert dev.read32(r.CTRL) & r.CTRL_RST_MASK == 0


def test_eec_ard_and_dmaidone_come_up_after_reset(dev):
    dev.write32(r.CTRL, r.CTRL_RST)
    assert not dev.read32(r.EEC) & r.EEC_ARD
    assert not dev.read32(r.RDRXCTL) & r.RDRXCTL_DMAIDONE
    time.sleep(dev.reset_delay_ns / 1e9 + 0.001)
    assert dev.read32(r.EEC) & r.EEC_ARD
    assert dev.read32(r.RDRXCTL) & r.RDRXCTL_DMAIDONE
    dev.write32(r.EEC, 0)                       # read-only bits stay
    assert dev.read32(r.EEC) & (r.EEC_ARD | r.EEC_PRES) == r.EEC_ARD | r.EEC_PRES


def test_autoc_restart_brings_link_up_at_10g_with_lsc(dev):
    settle(dev)
    dev.read32(r.EICR)
    dev.write32(r.AUTOC, r.AUTOC_LMS_10G_SERIAL | r.AUTOC_AN_RESTART)
    assert dev.read32(r.LINKS) & r.LINKS_UP == 0, "link drops while negotiating"
    assert dev.read32(r.AUTOC) & r.AUTOC_AN_RESTART == 0, "AN_RESTART self-clears"
    time.sleep(dev.link_delay_ns / 1e9 + 0.001)
    links = dev.read32(r.LINKS)
    assert links & r.LINKS_UP and links & r.LINKS_SPEED_MASK == r.LINKS_SPEED_10G
    assert dev.read32(r.STATUS) & r.STATUS_LINKUP
    assert dev.read32(r.EICR) & r.EICR_LSC
    assert dev.read32(r.EICR) & r.EICR_LSC == 0, "LSC is raised once per link-up"


def test_lnk_rst_drops_and_restores_link(dev):
    settle(dev)
    assert dev.read32(r.LINKS) & r.LINKS_UP
    dev.write32(r.CTRL, r.CTRL_LNK_RST)
    assert dev.read32(r.LINKS) & r.LINKS_UP == 0
    time.sleep(dev.link_delay_ns / 1e9 + 0.001)
    assert dev.read32(r.LINKS) & r.LINKS_UP


def test_statistics_clear_on_read(dev, make_driver):
    drv = make_driver(drop_en=True)
    dev.wire.send(TrafficProfile(count=7))
    assert dev.read32(r.GPRC) == 7
    assert dev.read32(r.GPRC) == 0
    assert dev.read32(r.QPRC(0)) == 7


def test_64bit_counter_low_high_pair(dev, make_driver):
    """GORC crosses 2**32 octets: the low read latches the high half and clears both."""
    drv = make_driver(drop_en=True)
    dev.write32(r.RXDCTL(0), 0)                 # queue off: DROP_EN drops after counting
    dev.write32(r.HLREG0, dev.read32(r.HLREG0) | r.HLREG0_JUMBOEN)
    dev.write32(r.MAXFRS, 9018 << r.MAXFRS_MFS_SHIFT)
    n = 480_000
    dev.wire.send(TrafficProfile(count=n, sizes=(9018,)))
    low = dev.read32(r.GORCL)
    high = dev.read32(r.GORCH)
    assert high == 1 and (high << 32 | low) == n * 9018
    assert dev.read32(r.GORCL) == 0 and dev.read32(r.GORCH) == 0
    assert dev.read32(r.QPRDC(0)) == n


def test_rxdctl_enable_reads_back_only_when_enabled(dev):
    settle(dev)
    dev.write32(r.RXDCTL(5), r.RXDCTL_ENABLE)            # RDLEN is 0: the queue cannot start
    assert dev.read32(r.RXDCTL(5)) & r.RXDCTL_ENABLE == 0
    assert dev.diagnostics()["queue_refused"] == 1
    dev.write32(r.RDLEN(5), 64 * 16)
    dev.write32(r.RXDCTL(5), r.RXDCTL_ENABLE)
    assert dev.read32(r.RXDCTL(5)) & r.RXDCTL_ENABLE
    dev.write32(r.RXDCTL(5), 0)
    assert dev.read32(r.RXDCTL(5)) & r.RXDCTL_ENABLE == 0


def test_txdctl_enable_needs_dmatxctl_te(dev):
    settle(dev)
    dev.write32(r.TDLEN(2), 64 * 16)
    dev.write32(r.TXDCTL(2), r.TXDCTL_ENABLE)
    assert dev.read32(r.TXDCTL(2)) & r.TXDCTL_ENABLE == 0
    dev.write32(r.DMATXCTL, r.DMATXCTL_TE)
    dev.write32(r.TXDCTL(2), r.TXDCTL_ENABLE)
    assert dev.read32(r.TXDCTL(2)) & r.TXDCTL_ENABLE


def test_interrupt_cause_and_mask_registers(dev):
    settle(dev)
    dev.read32(r.EICR)
    dev.write32(r.EIMS, 0x5)
    dev.write32(r.EIMS, 0x100)
    assert dev.read32(r.EIMS) == 0x105                  # EIMS sets mask bits
    dev.write32(r.EIMC, 0x4)
    assert dev.read32(r.EIMS) == 0x101                  # EIMC clears them
    dev.write32(r.EICS, 0x30)
    dev.write32(r.EICR, 0x10)                           # write 1 to clear
    assert dev.read32(r.EICR) == 0x20                   # read returns and clears
    assert dev.read32(r.EICR) == 0


def test_read_only_registers_ignore_writes(dev):
    settle(dev)
    before = dev.read32(r.LINKS)
    dev.write32(r.LINKS, 0)
    assert dev.read32(r.LINKS) == before


def test_srrctl_answers_at_both_addresses(dev):
    dev.write32(r.SRRCTL_ALIAS(3), 0x0200_0004)
    assert dev.read32(r.SRRCTL(3)) == 0x0200_0004
    assert r.SRRCTL(3) != r.SRRCTL_ALIAS(3)


def test_queue_registers_in_the_second_range(dev):
    dev.write32(r.RDBAL(100), 0x12340000)
    assert r.RDBAL(100) == 0x0D000 + 0x40 * 36
    assert dev.read32(0x0D000 + 0x40 * 36) == 0x12340000


def test_reset_values_from_the_nvm(dev):
    assert dev.read32(r.RAH(0)) & r.RAH_AV
    assert dev.read32(r.SRRCTL(0)) & r.SRRCTL_BSIZEPKT_MASK == 2      # 2 KB
    assert dev.read32(r.HLREG0) & r.HLREG0_RXCRCSTRP
    assert dev.read32(r.MAXFRS) >> r.MAXFRS_MFS_SHIFT == 1518


@pytest.mark.parametrize("offset,msg", [(0x2, "aligned"), (0x20000, "BAR0"),
                                         (0x00004, "no 82599 register")])
def test_bad_register_access_is_an_error(dev, offset, msg):
    with pytest.raises(ModelError, match=msg):
        dev.read32(offset)
    with pytest.raises(ModelError, match=msg):
        dev.write32(offset, 1)


def test_per_index_functions_reject_undefined_indices():
    with pytest.raises(IndexError, match=r"RDT\(0\) to RDT\(127\)"):
        r.RDT(128)
    with pytest.raises(IndexError, match="QPRC"):
        r.QPRC(16)
    assert list(r.indices(r.RSSRK)) == list(range(10))


def test_rqsmr_maps_queues_to_statistics(dev, make_driver):
    drv = make_driver(nrx=2, rss_queues=2, drop_en=True)
    dev.write32(r.RQSMR(0), 0)          # both queues count into index 0
    p = TrafficProfile(count=400, flows=16)
    dev.wire.send(p)
    assert dev.read32(r.QPRC(0)) == 400 and dev.read32(r.QPRC(1)) == 0


def test_every_name_in_the_register_map_reaches_python():
    import pathlib
    import re
    pxd = pathlib.Path(r.__file__).with_name("ixgbe.pxd").read_text()
    names = re.findall(r"^    ([A-Z][A-Z0-9_]+) = ", pxd, re.M)
    assert len(names) > 150
    missing = [n for n in names if not isinstance(getattr(r, n, None), int) or getattr(r, n) < 0]
    assert not missing
    assert r.RAH_AV == 0x80000000 and r.LINKS_SPEED_10G == r.LINKS_SPEED_MASK
