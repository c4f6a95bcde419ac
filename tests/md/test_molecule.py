import numpy as np
import pytest

from mdxfer.errors import MoleculeError
from mdxfer.molecule import canonical_smiles, embed, inchikey, parse_smiles


def test_embed_is_seeded_and_has_hydrogens():
    a = embed("CC(=C)C=C", seed=7)
    b = embed("CC(=C)C=C", seed=7)
    assert a.GetNumAtoms() == 13  # C5H8 with explicit H
    pa = a.GetConformer().GetPositions()
    pb = b.GetConformer().GetPositions()
    assert np.allclose(pa, pb)
    # a real 3D structure: C=C bonds ~1.34 Å after the force-field clean-up
    d = np.linalg.norm(pa[1] - pa[2])
    assert 1.25 < d < 1.45


def test_inchikey_names_isoprene():
    assert inchikey("CC(=C)C=C") == "RRHGJUQNOFWUDK-UHFFFAOYSA-N"
    assert inchikey("C=CC(C)=C") == inchikey("CC(=C)C=C")
    assert canonical_smiles("C(C)O") == canonical_smiles("OCC")


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("C1CC", "Cannot parse"),
        ("", "Empty"),
        ("C(C)(C)(C)(C)C", "not a valid molecule"),
        ("CC.O", "disconnected"),
        ("C C", "whitespace"),
    ],
)
def test_bad_smiles_give_clear_errors(bad, fragment):
    with pytest.raises(MoleculeError, match=fragment):
        parse_smiles(bad)
