"""Settings of the heads room: targets, features, head types and training knobs."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from warehouse.settings import Strict


class LightGBMSettings(Strict):
    num_boost_round: int = Field(300, ge=1)
    learning_rate: float = 0.05
    num_leaves: int = 31
    reduce_dim: int = Field(64, ge=0, description="PCA components per encoder before trees (0 = raw)")
    early_stopping_rounds: int = 30
    min_data_in_leaf: int = Field(20, ge=1)
    lambda_l2: float = Field(
        10.0, ge=0, description="L2 penalty on leaf values: boosting from confident linear probabilities leaves "
        "near-zero hessians, and unpenalised leaf values then blow up",
    )
    num_threads: int = Field(2, ge=1)
    stack_linear: bool = Field(
        True, description="add out-of-fold linear-model scores (class probabilities / log price) as tree inputs"
    )
    stack_dim: int = Field(256, ge=1, description="PCA components per encoder seen by the stacked linear model")
    stack_folds: int = Field(5, ge=2)
    pca_fit_rows: int = Field(
        200_000, ge=2, description="rows a block's PCA is fitted on (a seeded sample above it; every row is projected)"
    )
    quantiles: tuple[float, float] = Field((0.1, 0.9), description="prediction interval of regression targets")


class MLPSettings(Strict):
    features: list[str] = Field(
        default_factory=list,
        description="feature blocks the net reads (by encoder name; empty, or none of them present: every block)",
    )
    hidden: int = 512
    dropout: float = 0.2
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    max_epochs: int = 60
    patience: int = 6
    wide: bool = Field(True, description="add a per-target linear layer on the inputs (wide and deep)")
    ensemble: int = Field(3, ge=1, description="nets trained with seeds seed, seed+1, ...; their outputs averaged")
    threads: int | None = Field(None, ge=1, description="torch intra-op threads while training (None: unchanged)")
    quantiles: tuple[float, float] = Field((0.1, 0.9), description="pinball-loss outputs giving the price interval")
    logit_adjust: float = Field(
        0.0, ge=0, description="logit-adjusted cross-entropy (Menon et al. 2021): train on logits + tau * log(class "
        "prior) and predict from the plain logits, so rare classes are not drowned by frequent ones; 0 = plain "
        "cross-entropy, 1 = the balanced-error optimum",
    )


class LinearSettings(Strict):
    features: list[str] = Field(
        default_factory=list,
        description="feature blocks the linear model reads (by encoder name; empty, or none of them present: every block)",
    )
    optional_features: list[str] = Field(
        default_factory=list,
        description="blocks of `features` a target's model may leave out: each target is fitted with and without "
        "them and keeps the better on validation (log-loss / R² on log); costs a second fit per target",
    )
    C: list[float] = Field(
        default_factory=lambda: [1.0, 10.0, 30.0, 100.0], min_length=1,
        description="inverse L2 penalty of the logistic regressions: candidates, the best validation log-loss wins per target",
    )
    alpha: list[float] = Field(
        default_factory=lambda: [0.3, 1.0, 3.0], min_length=1,
        description="L2 penalty of the ridge on log price: candidates, the best validation R² wins per target",
    )
    class_weight: Literal["balanced"] | None = Field(
        None, description="'balanced': each class weighs as much as any other in the loss (rare classes pulled up)"
    )
    max_iter: int = Field(1000, ge=10)
    quantiles: tuple[float, float] = Field((0.1, 0.9), description="price interval: quantiles of the validation residuals")


class KNNSettings(Strict):
    features: list[str] = Field(
        default_factory=lambda: ["title_chars"],
        description="feature blocks the neighbours are found on (by encoder name; none present: every block)",
    )
    k: list[int] = Field(default_factory=lambda: [5, 10, 20], min_length=1,
                         description="neighbours: candidates, the best validation score wins per target")
    quantiles: tuple[float, float] = Field((0.1, 0.9), description="price interval: quantiles of the validation residuals")


HeadName = Literal["lightgbm", "mlp", "linear", "knn"]


class BlendSettings(Strict):
    members: list[HeadName] = Field(
        default_factory=lambda: ["mlp", "linear"], min_length=1,
        description="heads fitted on the same rows and mixed per target with weights picked on the validation rows",
    )
    step: float = Field(0.05, gt=0, le=1, description="grid step of the member weights (they sum to 1)")
    prior_tau: list[float] = Field(
        default_factory=lambda: [0.0], description="post-hoc logit adjustment of classification targets: candidates "
        "tau (probabilities / prior**tau); the best validation macro-F1 that keeps validation accuracy wins; [0] = off",
    )
    quantiles: tuple[float, float] = Field(
        (0.1, 0.9), description="the interval the members' ends are mixed into; the conformal calibration aims at its coverage"
    )


class TrainSettings(Strict):
    features: list[str] = Field(
        default_factory=lambda: ["image", "title", "title_words", "title_chars"], description="encoder names"
    )
    classification_targets: list[str] = Field(
        default_factory=lambda: [
            "master_category",
            "sub_category",
            "article_type",
            "gender",
            "usage",
            "base_colour",
            "season",
        ]
    )
    regression_targets: list[str] = Field(default_factory=lambda: ["price"])
    target_features: dict[str, list[str]] = Field(
        default_factory=dict, description="per target, the encoder names it trains on instead of `features`; the "
        "targets with one list train together as one model (e.g. price on title n-grams stored as slots, the "
        "categories on the dense layout, which each does better on: README, Encoders)",
    )
    heads: list[Literal["lightgbm", "mlp", "linear", "knn", "blend"]] = Field(default_factory=lambda: ["mlp"])
    seed: int = 0
    test_size: float = Field(0.2, gt=0, lt=1)
    val_size: float = Field(0.1, gt=0, lt=1)
    refit_all: bool = Field(
        True, description="after the evaluation fit is scored on the test split, fit the registered model again on "
        "every labelled row but the validation share (kept for early stopping), so no label is left out",
    )
    calibration_size: float = Field(
        0.1, ge=0, lt=1, description="share of rows held out of the evaluation fit to calibrate the price interval "
        "(conformalised quantiles); only when a regression target is trained; 0 = uncalibrated",
    )
    calibration_folds: int = Field(
        0, ge=0, description="calibrate the price interval on out-of-fold outputs of this many extra fits over the "
        "training rows instead of a held-out calibration split (every training row calibrates; no rows leave "
        "training; costs that many more fits); 0 or 1 = off (calibration_size)",
    )
    max_rows: int | None = Field(
        None, ge=10, description="train on a seeded sample of this many labelled products (None: all of them)",
    )
    sparse_features: bool = Field(
        True, description="hold hashing and columns blocks as sparse matrices while training (false: dense, "
        "32 KB a product for two 4096-d hashed encoders); both give the same model",
    )
    ngram_min_df: int = Field(
        2, ge=1, description="a hashed n-gram stored as a slot (hashing `max_ngrams`) becomes an input when at least "
        "this many of the products read for training hold it (their labels are not read)",
    )
    ngram_max_codes: int = Field(
        32768, ge=1, description="at most this many n-gram inputs per hashing block stored as slots (the most "
        "frequent): bounds the heads' width whatever the catalog's vocabulary",
    )
    min_class_count: int = Field(
        10, ge=2, description="classes with fewer labelled rows are merged into '__other__'"
    )
    label_folds: int = Field(
        5, ge=0, description="out-of-fold folds that judge every training label for reclassification "
        "(each fitted with the registered model's head and settings on the other folds); 0 or 1 = off",
    )
    label_fold_ensemble: int | None = Field(
        1, ge=1, description="MLP nets per label fold (None: mlp.ensemble); one net per fold costs a third of "
        "three, and the label-noise benchmark compares the errors each finds",
    )
    label_issue_max_quality: float = Field(
        0.1, ge=0, le=1, description="a label confident learning flags becomes a candidate only if its out-of-fold "
        "probability (label_quality) is at most this: the label-noise benchmark's precision-recall curve",
    )
    rare_classes_reported: int = Field(20, ge=0, description="per-class test recall of the N rarest classes in the report")
    confusion_top_n: int = Field(20, ge=2, description="confusion-matrix PNGs show the N most frequent classes")
    lightgbm: LightGBMSettings = Field(default_factory=LightGBMSettings)
    mlp: MLPSettings = Field(default_factory=MLPSettings)
    linear: LinearSettings = Field(default_factory=LinearSettings)
    knn: KNNSettings = Field(default_factory=KNNSettings)
    blend: BlendSettings = Field(default_factory=BlendSettings)


class ScoreSettings(Strict):
    top_k: int = Field(3, ge=1)
    reclass_threshold: float = Field(0.8, ge=0, le=1)
    batch_rows: int = Field(
        131072, ge=1, description="products read and scored together: each read of the embedding store scans it "
        "once (measured at a million products: 8192 rows took as long to read as 65536), so fewer, larger batches; "
        "memory grows with it (about 7 KB per product with the demo encoders)",
    )
    shards: int = Field(1, ge=1, description="scoring shards run as separate Prefect tasks (e.g. on Dask workers)")
