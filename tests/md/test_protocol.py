import pytest

from mdxfer.errors import ProtocolError
from mdxfer.md.lammps import render
from mdxfer.md.protocol import PRESETS, load_protocol


def test_paper_preset_has_the_seed_numbers():
    p = load_protocol("paper")
    assert p.n_molecules == 100 and p.box_A == (30.0, 30.0, 200.0)
    assert p.pressure_atm == 200 and p.temperature_K == 300 and p.timestep_fs == 1.0
    assert p.steps(p.compress_ps) == 100_000 and p.steps(p.nvt_ps) == 100_000
    assert p.steps(p.stack_compress_ps) == 100_000 and p.steps(p.stack_nvt_ps) == 100_000


def test_quick_has_the_same_stages_and_fewer_steps():
    q, p = PRESETS["quick"], PRESETS["paper"]
    assert q.steps(q.compress_ps) < p.steps(p.compress_ps) / 10
    assert q.steps(q.nvt_ps) < p.steps(p.nvt_ps) / 10
    assert q.digest() != p.digest()


def test_toml_file_and_overrides(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text('preset = "paper"\npdamp_fs = 100\nbox_A = [30, 30, 150]\nhbond = false\n')
    p = load_protocol(str(f), {"nvt_ps": 50})
    assert p.pdamp_fs == 100.0 and p.box_A == (30.0, 30.0, 150.0) and not p.hbond
    assert p.nvt_ps == 50.0 and p.compress_ps == 100.0
    assert p.name == "paper+mine"
    assert p.digest() != load_protocol("paper").digest()


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("nvt_ps = -5", "must be positive"),
        ("bogus_field = 1", "Unknown protocol field"),
        ('preset = "fast"', "unknown preset"),
        ("timestep_fs = 4", "unstable"),
        ("hbond = 3", "true or false"),
        ("box_A = [30, 30]", "list of 3"),
        ("nvt_ps = ", "not valid TOML"),
    ],
)
def test_bad_protocol_files_are_refused(tmp_path, content, fragment):
    f = tmp_path / "bad.toml"
    f.write_text(content + "\n")
    with pytest.raises(ProtocolError, match=fragment):
        load_protocol(str(f))


def test_unknown_preset_and_missing_template_value():
    with pytest.raises(ProtocolError, match="Unknown protocol"):
        load_protocol("no-such-preset")
    with pytest.raises(ProtocolError, match="needs a value"):
        render("in.nvt.lmp", stage="nvt")


def test_protocol_round_trips_through_its_dict():
    from mdxfer.md.protocol import Protocol

    p = load_protocol("quick", {"nvt_ps": 7})
    d = p.to_dict()
    assert Protocol.from_dict(d) == p
    assert Protocol.from_dict({**d, "field_of_an_older_version": 1}) == p


def test_production_preset_and_replicas():
    p = load_protocol("production")
    assert p.packing == "packmol" and p.shake and p.timestep_fs == 2.0
    assert not p.stack_barostat and p.estimator == "pe_nh" and p.equilibration == "detect"
    assert p.partner_ps == 1000.0 and load_protocol("paper").partner_ps == 100.0
    # replicas: new seeds, replica 0 is the protocol itself, the count is not in the digest
    assert p.replica(0).digest() == p.digest()
    assert len({p.replica(k).seed for k in range(4)}) == 4
    assert load_protocol("production", {"replicas": 5}).digest() == p.digest()
    assert load_protocol("demo").digest() != p.digest()


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"timestep_fs": 2.0, "shake": False}, "needs shake"),
        ({"estimator": "etot"}, "estimator must be one of"),
        ({"replicas": 0}, "replicas must be at least 1"),
        ({"stack_barostat": True, "stack_compress_ps": 0.0}, "stack_compress_ps must be positive"),
    ],
)
def test_production_fields_are_validated(overrides, fragment):
    with pytest.raises(ProtocolError, match=fragment):
        load_protocol("production", overrides)


def test_cell_digest_ignores_only_the_stack_settings():
    """Boxes are keyed by the cell digest: a stack-only change shares them, anything a cell
    runs with (length, seed, cut-off) does not."""
    import dataclasses

    from mdxfer.md.protocol import STACK_ONLY_FIELDS, load_protocol

    p = load_protocol("production")
    for name, value in (
        ("interface_wall_A", 2.0),
        ("stack_nvt_ps", 40.0),
        ("cross_energy", False),
        ("stack_gap_A", 2.0),
    ):
        q = dataclasses.replace(p, **{name: value})
        assert name in STACK_ONLY_FIELDS
        assert q.digest() != p.digest() and q.cell_digest() == p.cell_digest()
        assert q.box_digest("stack") == q.digest() and q.box_digest("species") == p.cell_digest()
    for name, value in (
        ("nvt_ps", 45.0),
        ("seed", 1),
        ("cutoff_A", 12.0),
        ("charges", "gasteiger"),
    ):
        assert dataclasses.replace(p, **{name: value}).cell_digest() != p.cell_digest()
    assert p.replica(1).cell_digest() != p.cell_digest()
    assert dataclasses.replace(p, replicas=3).cell_digest() == p.cell_digest()
    # each role keeps only its own NVT length
    shorter = dataclasses.replace(p, nvt_ps=15.0)
    assert shorter.cell_digest("partner") == p.cell_digest("partner")
    longer_partner = dataclasses.replace(p, partner_nvt_ps=500.0)
    assert longer_partner.cell_digest() == p.cell_digest()
    assert longer_partner.cell_digest("partner") != p.cell_digest("partner")
    assert p.cell_digest("partner") != p.cell_digest("candidate")
    # no separate partner length: the partner runs nvt_ps, whichever field says it
    q = dataclasses.replace(p, partner_nvt_ps=0.0, nvt_ps=1000.0)
    assert q.cell_digest("partner") == dataclasses.replace(q, partner_nvt_ps=1000.0).cell_digest(
        "partner"
    )


def test_fields_added_later_leave_the_stored_digests_alone():
    """The campaign stores and run folders (data/campaign_runs) are keyed by these digests:
    a field added to Protocol at its default must not change them, set it must."""
    p = load_protocol("production")
    assert p.digest() == "5f0d467107fa"
    assert p.cell_digest() == "a3d6f7f062cd"
    assert p.cell_digest("partner") == "7e8299d148ac"
    hot = load_protocol("production", {"anneal_ps": 50.0})
    assert hot.digest() != p.digest() and hot.cell_digest() != p.cell_digest()
    assert load_protocol("production", {"anneal_K": 450.0}).digest() == p.digest()


def test_an_anneal_that_does_not_run_leaves_the_digests_alone():
    """An anneal temperature keys results only when its anneal runs (length > 0)."""
    p = load_protocol("production")
    for length, temperature in (("anneal_ps", "anneal_K"), ("nvt_anneal_ps", "nvt_anneal_K")):
        off = load_protocol("production", {temperature: 600.0})
        assert (off.digest(), off.cell_digest()) == (p.digest(), p.cell_digest())
        on = load_protocol("production", {length: 20.0})
        hotter = load_protocol("production", {length: 20.0, temperature: 600.0})
        assert on.digest() != p.digest() and hotter.digest() != on.digest()
        assert hotter.cell_digest() != on.cell_digest()
