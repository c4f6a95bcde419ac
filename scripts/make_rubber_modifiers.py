"""Write the candidate list of issue 12's ranking outside QM9: small molecules used in, or
proposed as, rubber (isoprene) additives and surface modifiers.

    .venv/bin/python scripts/make_rubber_modifiers.py          # writes the two files below
    .venv/bin/python scripts/make_rubber_modifiers.py --check  # validate only, write nothing

Every entry is (name, SMILES, class, source). The SMILES were written from the compound's
common/IUPAC name (no network here: they are not copied from PubChem); each is checked with
RDKit, against the element and size limits of the issue (C, H, N, O, F, S, Cl, Br; neutral;
at most ~30 heavy atoms, see MAX_HEAVY_ATOMS) and with mdxfer's own production route (compact
conformer :func:`mdxfer.molecule.embed_compact` + DREIDING typing with MMFF94 charges,
:func:`mdxfer.forcefield.parametrize`). Duplicates are found by RDKit canonical SMILES. A
failure stops the script with the entry's name: the list is fixed by hand, never silently.

``source`` names where the candidate comes from: a rubber-chemicals reference that lists it
(Tormento's manual of rubber chemicals; Henning & Costin for peroxide coagents), the Wikipedia
article of the compound or of its class, or "rubber compounding practice" for a common/trade
name taken from general compounding knowledge and not checked against a document here. One
SMILES (abietic acid) was compared with a published InChI; the others were not cross-checked
against a database. Metal-containing chemicals (zinc dithiocarbamates,
ZnO, zinc stearate), organosilanes (TESPT, the silica coupling agents themselves: Si is not in
the force field), salts and molecules above ~30 heavy atoms (Irganox 1076, TOTM, EBS wax,
Tinuvin 770, TBzTD) are out; where a class needs them, an organic model of the part that
faces the rubber is listed instead (e.g. dipropyl tetrasulfide for TESPT's tetrasulfane).

Writes ``examples/rubber_modifiers.csv`` (``smiles,name,class,source,heavy_atoms,formula``)
and ``examples/rubber_modifiers.smi`` (``SMILES name`` lines, for ``mdxfer rank``).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSV_OUT = ROOT / "examples" / "rubber_modifiers.csv"
SMI_OUT = ROOT / "examples" / "rubber_modifiers.smi"
ELEMENTS = {"C", "H", "N", "O", "F", "S", "Cl", "Br"}
MAX_HEAVY_ATOMS = 31  # "up to ~30"; the largest entries are C30 waxes and Naugard 445

TORMENTO = (
    "L. A. Tormento, Chemicals for the Rubber Industry, 5th ed. (LT Quimicos, 2019) "
    "https://www.scribd.com/document/554948925/Chemicals-for-the-Rubber-Industry"
)
#: entries named from rubber-compounding practice (common or trade name); the structure was
#: written from the chemical name and is not checked against a document here
PRACTICE = "rubber compounding practice (common/trade name)"
HENNING = (
    "S. K. Henning, R. Costin, Fundamentals of Curing Elastomers with Peroxides and "
    "Coagents I (ACS Rubber Division, 2005)"
)
W = "Wikipedia: "

CANDIDATES: list[tuple[str, str, str, str]] = [
    # ---- antioxidants / antiozonants (antidegradants)
    ("6PPD", "CC(C)CC(C)Nc1ccc(Nc2ccccc2)cc1", "antiozonant", f"{TORMENTO}; {W}6PPD"),
    ("IPPD", "CC(C)Nc1ccc(Nc2ccccc2)cc1", "antiozonant", f"{TORMENTO}; {W}Antiozonant"),
    (
        "CPPD",
        "C1CCC(CC1)Nc1ccc(Nc2ccccc2)cc1",
        "antiozonant",
        f"{W}Antiozonant (p-phenylenediamines); {PRACTICE}",
    ),
    (
        "TMQ_monomer",
        "CC1=CC(C)(C)Nc2ccccc12",
        "antioxidant",
        f"{TORMENTO} (TMQ, the polymerised 2,2,4-trimethyl-1,2-dihydroquinoline)",
    ),
    (
        "ethoxyquin_ETMQ",
        "CCOc1ccc2NC(C)(C)C=C(C)c2c1",
        "antiozonant",
        f"{W}Antiozonant (ETQ); {W}Ethoxyquin",
    ),
    (
        "styrenated_phenol",
        "CC(c1ccccc1)c1ccccc1O",
        "antioxidant",
        f"{TORMENTO} (SP, styrenated phenol; mono-styrenated isomer)",
    ),
    (
        "BHT",
        "Cc1cc(C(C)(C)C)c(O)c(C(C)(C)C)c1",
        "antioxidant",
        f"{W}Butylated hydroxytoluene; {W}Polymer stabilizers",
    ),
    (
        "AO_2246",
        "Cc1cc(Cc2cc(C)cc(C(C)(C)C)c2O)c(O)c(C(C)(C)C)c1",
        "antioxidant",
        f"{W}Polymer stabilizers (bisphenolic antioxidants); 2,2'-methylenebis(6-tert-butyl-4-methylphenol)",
    ),
    (
        "Santonox_R",
        "Cc1cc(O)c(C(C)(C)C)cc1Sc1cc(C(C)(C)C)c(O)cc1C",
        "antioxidant",
        "4,4'-thiobis(6-tert-butyl-m-cresol), non-staining rubber antioxidant; " + PRACTICE,
    ),
    (
        "Irganox_1520",
        "CCCCCCCCSCc1cc(C)c(O)c(CSCCCCCCCC)c1",
        "antioxidant",
        f"2,4-bis(octylthiomethyl)-6-methylphenol, antioxidant for SBR/BR; {W}Polymer stabilizers",
    ),
    (
        "Irganox_1076_methyl_ester",
        "COC(=O)CCc1cc(C(C)(C)C)c(O)c(C(C)(C)C)c1",
        "antioxidant",
        "model of Irganox 1076 (C18 ester, 38 heavy atoms, too large): its methyl ester; "
        f"{W}Polymer stabilizers",
    ),
    (
        "alpha_tocopherol",
        "Cc1c(C)c2OC(C)(CCCC(C)CCCC(C)CCCC(C)C)CCc2c(C)c1O",
        "antioxidant",
        f"{W}Tocopherol; {W}Polymer stabilizers (bio-based antioxidant)",
    ),
    (
        "diphenylamine",
        "c1ccc(Nc2ccccc2)cc1",
        "antioxidant",
        f"{W}Diphenylamine (rubber antioxidant)",
    ),
    (
        "ODPA_tert_octyl",
        "CC(C)(C)CC(C)(C)c1ccc(Nc2ccc(C(C)(C)CC(C)(C)C)cc2)cc1",
        "antioxidant",
        "octylated diphenylamine (4,4'-di-tert-octyl); " + PRACTICE,
    ),
    (
        "Naugard_445",
        "CC(C)(c1ccccc1)c1ccc(Nc2ccc(C(C)(C)c3ccccc3)cc2)cc1",
        "antioxidant",
        "4,4'-bis(alpha,alpha-dimethylbenzyl)diphenylamine; " + PRACTICE,
    ),
    (
        "PBN",
        "c1ccc(Nc2ccc3ccccc3c2)cc1",
        "antioxidant",
        f"{W}N-Phenyl-2-naphthylamine (rubber antioxidant)",
    ),
    ("MBI", "S=C1Nc2ccccc2N1", "antioxidant", "2-mercaptobenzimidazole, synergist; " + PRACTICE),
    # ---- vulcanisation accelerators, agents, coagents, retarders
    ("MBT", "S=C1Nc2ccccc2S1", "accelerator", f"{TORMENTO}; {W}Mercaptobenzothiazole"),
    ("MBTS", "c1ccc2sc(SSc3nc4ccccc4s3)nc2c1", "accelerator", TORMENTO),
    ("CBS", "C1CCC(CC1)NSc1nc2ccccc2s1", "accelerator", TORMENTO),
    ("TBBS", "CC(C)(C)NSc1nc2ccccc2s1", "accelerator", TORMENTO),
    ("MBS", "C1COCCN1Sc1nc2ccccc2s1", "accelerator", TORMENTO),
    ("DCBS", "C1CCC(CC1)N(C1CCCCC1)Sc1nc2ccccc2s1", "accelerator", TORMENTO),
    (
        "TBSI",
        "CC(C)(C)N(Sc1nc2ccccc2s1)Sc1nc2ccccc2s1",
        "accelerator",
        f"{W}Sulfur vulcanization (sulfenimide accelerators)",
    ),
    (
        "DPG",
        "N=C(Nc1ccccc1)Nc1ccccc1",
        "accelerator",
        f"{W}Diphenylguanidine; {W}Sulfur vulcanization",
    ),
    ("TMTD", "CN(C)C(=S)SSC(=S)N(C)C", "accelerator", f"{TORMENTO}; {W}Thiram"),
    ("TETD", "CCN(CC)C(=S)SSC(=S)N(CC)CC", "accelerator", f"{TORMENTO}; {W}Disulfiram"),
    (
        "DPTT",
        "S=C(SSSSC(=S)N1CCCCC1)N1CCCCC1",
        "accelerator",
        "dipentamethylenethiuram tetrasulfide (sulfur donor); " + PRACTICE,
    ),
    ("DTDM", "C1COCCN1SSN1CCOCC1", "vulcanising agent", f"{TORMENTO} (sulfur donor)"),
    ("ETU", "S=C1NCCN1", "accelerator", f"{W}Ethylene thiourea (chloroprene rubber accelerator)"),
    ("thiocarbanilide", "S=C(Nc1ccccc1)Nc1ccccc1", "accelerator", f"{W}Thiocarbanilide"),
    (
        "hexamethylenetetramine",
        "C1N2CN3CN1CN(C2)C3",
        "accelerator",
        f"{W}Hexamethylenetetramine (accelerator, methylene donor)",
    ),
    ("cyclo_octasulfur", "S1SSSSSSS1", "vulcanising agent", f"{W}Sulfur vulcanization (S8)"),
    (
        "CTP_PVI",
        "O=C1c2ccccc2C(=O)N1SC1CCCCC1",
        "retarder",
        f"{TORMENTO} (N-cyclohexylthiophthalimide)",
    ),
    (
        "Perkalink_900",
        "CC1=CC(=O)N(Cc2cccc(CN3C(=O)C=C(C)C3=O)c2)C1=O",
        "anti-reversion agent",
        "1,3-bis(citraconimidomethyl)benzene (BCDB), anti-reversion agent for sulfur-cured NR; "
        + PRACTICE,
    ),
    (
        "HVA-2",
        "O=C1C=CC(=O)N1c1cccc(N2C(=O)C=CC2=O)c1",
        "coagent",
        "N,N'-m-phenylenebismaleimide (coagent); " + HENNING,
    ),
    ("TAIC", "C=CCN1C(=O)N(CC=C)C(=O)N(CC=C)C1=O", "coagent", "triallyl isocyanurate; " + HENNING),
    (
        "TMPTMA",
        "CCC(COC(=O)C(C)=C)(COC(=O)C(C)=C)COC(=O)C(C)=C",
        "coagent",
        "trimethylolpropane trimethacrylate; " + HENNING,
    ),
    (
        "dicumyl_peroxide",
        "CC(C)(OOC(C)(C)c1ccccc1)c1ccccc1",
        "vulcanising agent",
        f"{W}Dicumyl peroxide",
    ),
    # ---- plasticisers
    (
        "DEHP",
        "CCCCC(CC)COC(=O)c1ccccc1C(=O)OCC(CC)CCCC",
        "plasticiser",
        f"{W}Plasticizer; {W}Bis(2-ethylhexyl) phthalate",
    ),
    (
        "DINP",
        "CC(C)CCCCCCOC(=O)c1ccccc1C(=O)OCCCCCCC(C)C",
        "plasticiser",
        f"{W}Plasticizer; {W}Diisononyl phthalate (one isomer)",
    ),
    ("DBP", "CCCCOC(=O)c1ccccc1C(=O)OCCCC", "plasticiser", f"{W}Dibutyl phthalate"),
    (
        "DOTP",
        "CCCCC(CC)COC(=O)c1ccc(C(=O)OCC(CC)CCCC)cc1",
        "plasticiser",
        f"{W}Bis(2-ethylhexyl) terephthalate",
    ),
    ("DOA", "CCCCC(CC)COC(=O)CCCCC(=O)OCC(CC)CCCC", "plasticiser", f"{W}Bis(2-ethylhexyl) adipate"),
    (
        "DOS",
        "CCCCC(CC)COC(=O)CCCCCCCCC(=O)OCC(CC)CCCC",
        "plasticiser",
        f"{W}Bis(2-ethylhexyl) sebacate",
    ),
    (
        "DINCH",
        "CC(C)CCCCCCOC(=O)C1CCCCC1C(=O)OCCCCCCC(C)C",
        "plasticiser",
        f"{W}DINCH (one isomer)",
    ),
    (
        "ATBC",
        "CCCCOC(=O)CC(CC(=O)OCCCC)(OC(C)=O)C(=O)OCCCC",
        "plasticiser",
        f"{W}Acetyl tributyl citrate",
    ),
    (
        "butyl_oleate",
        "CCCCCCCC/C=C\\CCCCCCCC(=O)OCCCC",
        "plasticiser",
        f"{W}Plasticizer (fatty acid esters for low-temperature rubber)",
    ),
    # ---- process oil model compounds (paraffinic, naphthenic, aromatic)
    (
        "squalane",
        "CC(C)CCCC(C)CCCC(C)CCCCC(C)CCCC(C)CCCC(C)C",
        "process oil model",
        f"{W}Squalane (paraffinic oil model)",
    ),
    ("decalin", "C1CCC2CCCCC2C1", "process oil model", f"{W}Decalin (naphthenic oil model)"),
    (
        "perhydrophenanthrene",
        "C1CCC2C(C1)CCC1CCCCC12",
        "process oil model",
        f"{W}Process oil (naphthenic model compound)",
    ),
    (
        "dodecylbenzene",
        "CCCCCCCCCCCCc1ccccc1",
        "process oil model",
        f"{W}Process oil (alkylaromatic model compound)",
    ),
    ("1-methylnaphthalene", "Cc1cccc2ccccc12", "process oil model", f"{W}1-Methylnaphthalene"),
    (
        "phenanthrene",
        "c1ccc2c(c1)ccc1ccccc12",
        "process oil model",
        f"{W}Phenanthrene (aromatic extender oil component)",
    ),
    (
        "benzo[a]pyrene",
        "c1ccc2c(c1)cc1ccc3cccc4ccc2c1c34",
        "process oil model",
        f"{W}Benzo[a]pyrene (PAH marker limited in extender oils, EU REACH Annex XVII)",
    ),
    # ---- fatty acids, amides, alcohols, amines (activators, slip agents, process aids)
    (
        "stearic_acid",
        "CCCCCCCCCCCCCCCCCC(=O)O",
        "fatty acid",
        f"{W}Stearic acid (vulcanisation activator)",
    ),
    ("palmitic_acid", "CCCCCCCCCCCCCCCC(=O)O", "fatty acid", f"{W}Palmitic acid"),
    ("oleic_acid", "CCCCCCCC/C=C\\CCCCCCCC(=O)O", "fatty acid", f"{W}Oleic acid"),
    ("oleamide", "CCCCCCCC/C=C\\CCCCCCCC(N)=O", "fatty amide", f"{W}Oleamide (slip agent)"),
    ("erucamide", "CCCCCCCC/C=C\\CCCCCCCCCCCC(N)=O", "fatty amide", f"{W}Erucamide (slip agent)"),
    (
        "glycerol_monostearate",
        "CCCCCCCCCCCCCCCCCC(=O)OCC(O)CO",
        "process aid",
        f"{W}Glycerol monostearate (antistatic, process aid)",
    ),
    ("stearyl_alcohol", "CCCCCCCCCCCCCCCCCCO", "fatty alcohol", f"{W}Stearyl alcohol"),
    (
        "octadecylamine",
        "CCCCCCCCCCCCCCCCCCN",
        "fatty amine",
        f"{W}Octadecylamine (dispersant, release agent)",
    ),
    # ---- tackifier / resin monomers and terpenes
    (
        "limonene",
        "CC1=CCC(CC1)C(C)=C",
        "tackifier/resin monomer",
        f"{W}Tackifier (terpene resins); {W}Limonene",
    ),
    (
        "alpha_pinene",
        "CC1=CCC2CC1C2(C)C",
        "tackifier/resin monomer",
        f"{W}Tackifier (terpene resins); {W}alpha-Pinene",
    ),
    (
        "beta_pinene",
        "C=C1CCC2CC1C2(C)C",
        "tackifier/resin monomer",
        f"{W}Tackifier (terpene resins); {W}beta-Pinene",
    ),
    (
        "coumarone",
        "c1ccc2occc2c1",
        "tackifier/resin monomer",
        f"{W}Coumarone-indene resin; {W}Benzofuran",
    ),
    (
        "indene",
        "C1C=Cc2ccccc21",
        "tackifier/resin monomer",
        f"{W}Coumarone-indene resin; {W}Indene",
    ),
    (
        "dicyclopentadiene",
        "C1=CC2C3C=CC(C3)C2C1",
        "tackifier/resin monomer",
        f"{W}Dicyclopentadiene (hydrocarbon resins, EPDM diene)",
    ),
    (
        "alpha_methylstyrene",
        "CC(=C)c1ccccc1",
        "tackifier/resin monomer",
        f"{W}alpha-Methylstyrene (C9 resins)",
    ),
    ("piperylene", "C/C=C/C=C", "tackifier/resin monomer", f"{W}Piperylene (C5 resins)"),
    (
        "p-tert-octylphenol",
        "CC(C)(C)CC(C)(C)c1ccc(O)cc1",
        "tackifier/resin monomer",
        f"{W}4-tert-Octylphenol (alkylphenol-formaldehyde tackifiers)",
    ),
    (
        "abietic_acid",
        "CC(C)C1=CC2=CCC3C(C)(CCCC3(C)C(=O)O)C2CC1",
        "tackifier/resin monomer",
        f"{W}Abietic acid (rosin)",
    ),
    (
        "squalene",
        "CC(C)=CCCC(C)=CCCC(C)=CCCC=C(C)CCC=C(C)CCC=C(C)C",
        "compatibiliser",
        f"{W}Squalene (isoprenoid hexamer)",
    ),
    # ---- waxes (n-alkanes; the box cross-section is 30 A)
    ("eicosane", "C" * 20, "wax", f"{W}Paraffin wax (antiozonant wax, C20-C40 n-alkanes)"),
    ("tetracosane", "C" * 24, "wax", f"{W}Paraffin wax"),
    ("octacosane", "C" * 28, "wax", f"{W}Paraffin wax"),
    ("triacontane", "C" * 30, "wax", f"{W}Paraffin wax"),
    # ---- surfactant-like modifiers
    (
        "C12E4",
        "CCCCCCCCCCCCOCCOCCOCCOCCO",
        "surfactant",
        f"{W}Polyethylene glycol alkyl ethers (Brij)",
    ),
    (
        "octylphenol_diethoxylate",
        "CC(C)(C)CC(C)(C)c1ccc(OCCOCCO)cc1",
        "surfactant",
        f"{W}Triton X-100 (its n = 2 oligomer)",
    ),
    (
        "sorbitan_monolaurate",
        "CCCCCCCCCCCC(=O)OCC(O)C1OCC(O)C1O",
        "surfactant",
        f"{W}Sorbitan monolaurate (Span 20)",
    ),
    ("4-nonylphenol", "CCCCCCCCCc1ccc(O)cc1", "surfactant", f"{W}Nonylphenol (linear isomer)"),
    (
        "lauric_diethanolamide",
        "CCCCCCCCCCCC(=O)N(CCO)CCO",
        "surfactant",
        f"{W}Cocamide DEA (lauric model)",
    ),
    ("dodecylamine", "CCCCCCCCCCCCN", "surfactant", f"{W}Dodecylamine"),
    (
        "1-dodecanethiol",
        "CCCCCCCCCCCCS",
        "process aid",
        f"{W}Dodecanethiol (chain-transfer agent, emulsion SBR)",
    ),
    # ---- silica-surface modifiers (organic parts), glycols, amines
    ("diethylene_glycol", "OCCOCCO", "silica modifier", f"{W}Diethylene glycol (silica activator)"),
    ("triethylene_glycol", "OCCOCCOCCO", "silica modifier", f"{W}Triethylene glycol"),
    (
        "hexaethylene_glycol",
        "OCCOCCOCCOCCOCCOCCO",
        "silica modifier",
        f"{W}Polyethylene glycol (n = 6)",
    ),
    (
        "octaethylene_glycol",
        "OCCOCCOCCOCCOCCOCCOCCOCCO",
        "silica modifier",
        f"{W}Polyethylene glycol (n = 8; PEG 4000 silica activator model)",
    ),
    ("glycerol", "OCC(O)CO", "silica modifier", f"{W}Glycerol"),
    ("ethanolamine", "NCCO", "silica modifier", f"{W}Ethanolamine"),
    (
        "triethanolamine",
        "OCCN(CCO)CCO",
        "silica modifier",
        f"{W}Triethanolamine (silica activator)",
    ),
    ("dicyclohexylamine", "C1CCC(CC1)NC1CCCCC1", "silica modifier", f"{W}Dicyclohexylamine"),
    (
        "dipropyl_tetrasulfide",
        "CCCSSSSCCC",
        "coupling agent model",
        f"{W}Bis(triethoxysilylpropyl)tetrasulfide (TESPT): its propyl tetrasulfane part",
    ),
    (
        "S-propyl_thiooctanoate",
        "CCCCCCCC(=O)SCCC",
        "coupling agent model",
        "NXT silane (3-octanoylthio-1-propyltriethoxysilane): its thioester part; " + PRACTICE,
    ),
    # ---- compatibilisers, functional monomers
    (
        "maleic_anhydride",
        "O=C1C=CC(=O)O1",
        "compatibiliser",
        f"{W}Maleic anhydride (maleated rubbers)",
    ),
    ("DDSA", "CCCCCCCCC/C=C/CC1CC(=O)OC1=O", "compatibiliser", f"{W}Dodecenylsuccinic anhydride"),
    ("glycidyl_methacrylate", "CC(=C)C(=O)OCC1CO1", "compatibiliser", f"{W}Glycidyl methacrylate"),
    ("acrylonitrile", "C=CC#N", "compatibiliser", f"{W}Acrylonitrile (NBR monomer)"),
    ("chloroprene", "C=CC(Cl)=C", "compatibiliser", f"{W}Chloroprene (CR monomer)"),
    ("styrene", "C=Cc1ccccc1", "compatibiliser", f"{W}Styrene (SBR monomer)"),
    (
        "1,2-epoxydodecane",
        "CCCCCCCCCCC1CO1",
        "compatibiliser",
        "model of epoxidised natural rubber's epoxide (ENR compatibiliser); " + PRACTICE,
    ),
    (
        "2,2,2-trifluoroethyl_methacrylate",
        "C=C(C)C(=O)OCC(F)(F)F",
        "surface modifier",
        "fluorinated methacrylate monomer (low-energy surface grafts); " + PRACTICE,
    ),
    (
        "6:2_FTOH",
        "OCCC(F)(F)C(F)(F)C(F)(F)C(F)(F)C(F)(F)C(F)(F)F",
        "surface modifier",
        f"{W}Fluorotelomer alcohol (6:2 FTOH)",
    ),
    # ---- flame retardants, peptisers, UV stabilisers, adhesion promoters, blowing agents
    (
        "TBBPA",
        "CC(C)(c1cc(Br)c(O)c(Br)c1)c1cc(Br)c(O)c(Br)c1",
        "flame retardant",
        f"{W}Tetrabromobisphenol A",
    ),
    (
        "DBDPE",
        "Brc1c(Br)c(Br)c(CCc2c(Br)c(Br)c(Br)c(Br)c2Br)c(Br)c1Br",
        "flame retardant",
        f"{W}Decabromodiphenyl ethane",
    ),
    (
        "hexachlorodecane_CP_model",
        "ClCC(Cl)CCC(Cl)C(Cl)CCC(Cl)CCl",
        "flame retardant",
        f"{W}Chlorinated paraffins (1,2,5,6,9,10-hexachlorodecane)",
    ),
    ("PCTP", "Sc1c(Cl)c(Cl)c(Cl)c(Cl)c1Cl", "peptiser", f"{W}Pentachlorothiophenol (peptiser)"),
    (
        "octabenzone",
        "CCCCCCCCOc1ccc(C(=O)c2ccccc2)c(O)c1",
        "UV stabiliser",
        f"{W}Octabenzone (2-hydroxy-4-octyloxybenzophenone)",
    ),
    (
        "drometrizole_UV-P",
        "Cc1ccc(O)c(-n2nc3ccccc3n2)c1",
        "UV stabiliser",
        f"{W}Drometrizole (Tinuvin P)",
    ),
    (
        "resorcinol",
        "Oc1cccc(O)c1",
        "adhesion promoter",
        f"{W}Resorcinol (resorcinol-formaldehyde bonding systems)",
    ),
    (
        "HMMM",
        "COCN(COC)c1nc(N(COC)COC)nc(N(COC)COC)n1",
        "adhesion promoter",
        f"{W}Hexamethoxymethylmelamine (methylene donor)",
    ),
    ("azodicarbonamide", "NC(=O)/N=N/C(N)=O", "blowing agent", f"{W}Azodicarbonamide"),
]


def check(entries: list[tuple[str, str, str, str]], md: bool = True) -> list[dict]:
    """Validate ``entries``; returns the CSV rows. Raises ValueError naming what fails."""
    from rdkit import Chem
    from rdkit.Chem.rdMolDescriptors import CalcMolFormula

    from mdxfer.errors import MdxferError
    from mdxfer.forcefield import parametrize
    from mdxfer.md.protocol import load_protocol
    from mdxfer.molecule import canonical_smiles, embed_compact, parse_smiles

    protocol = load_protocol("production")
    rows, seen, names, problems = [], {}, set(), []
    for name, smiles, cls, source in entries:
        try:
            mol = parse_smiles(smiles)
        except MdxferError as exc:
            problems.append(f"{name}: {exc}")
            continue
        canon = canonical_smiles(smiles)
        elements = {a.GetSymbol() for a in mol.GetAtoms()}
        heavy = mol.GetNumHeavyAtoms()
        if not elements <= ELEMENTS:
            problems.append(f"{name}: elements {sorted(elements - ELEMENTS)}")
        if Chem.GetFormalCharge(mol) or any(a.GetFormalCharge() for a in mol.GetAtoms()):
            problems.append(f"{name}: charged")
        if heavy > MAX_HEAVY_ATOMS:
            problems.append(f"{name}: {heavy} heavy atoms > {MAX_HEAVY_ATOMS}")
        if canon in seen:
            problems.append(f"{name}: duplicate of {seen[canon]}")
        if name in names:
            problems.append(f"{name}: duplicate name")
        seen[canon] = name
        names.add(name)
        if md:
            try:
                parametrize(
                    embed_compact(canon, seed=protocol.seed), canon, charges=protocol.charges
                )
            except MdxferError as exc:
                problems.append(f"{name}: {exc}")
        rows.append(
            {
                "smiles": smiles,
                "name": name,
                "class": cls,
                "source": source,
                "heavy_atoms": heavy,
                "formula": CalcMolFormula(mol),
            }
        )
    if problems:
        raise ValueError("rubber modifier list: " + "; ".join(problems))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="validate only, write nothing")
    ap.add_argument("--no-md", action="store_true", help="skip the conformer + DREIDING check")
    args = ap.parse_args(argv)
    rows = check(CANDIDATES, md=not args.no_md)
    if not args.check:
        with open(CSV_OUT, "w", newline="") as fh:
            w = csv.DictWriter(
                fh, fieldnames=["smiles", "name", "class", "source", "heavy_atoms", "formula"]
            )
            w.writeheader()
            w.writerows(rows)
        SMI_OUT.write_text(
            "# Rubber (isoprene) additive and surface-modifier candidates for `mdxfer rank`;\n"
            "# classes and sources: rubber_modifiers.csv. Regenerate: "
            "python scripts/make_rubber_modifiers.py\n"
            + "".join(f"{r['smiles']} {r['name']}\n" for r in rows)
        )
    classes: dict[str, int] = {}
    for r in rows:
        classes[r["class"]] = classes.get(r["class"], 0) + 1
    print(
        f"{len(rows)} candidates, heavy atoms {min(r['heavy_atoms'] for r in rows)}-"
        f"{max(r['heavy_atoms'] for r in rows)}; "
        + ", ".join(f"{k} {v}" for k, v in classes.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
