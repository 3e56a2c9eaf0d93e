"""Fraud rule `velocity-risk`, in Python: the same rule as `plugins/velocity-risk` (Rust),
with the same manifest and test vectors (`velocity-risk.toml` and
`velocity-risk.vectors.toml` here are links to the example rules'), and the same answers,
messages included. It scores a payment from what this host has already accepted for its
parties and from where the money goes; every point has a reason.

| signal | points (config key) | when |
|---|---|---|
| debtor burst | 250 (`points.debtor-burst`) | the debtor account sent `debtor-hourly-count` (5) or more payments in the last hour |
| debtor daily velocity | 150 (`points.debtor-daily`) | ... `debtor-daily-count` (20) or more in the last 24 hours |
| repeated pair | 150 (`points.pair-daily`) | this debtor paid this creditor `pair-daily-count` (3) or more times in 24 hours |
| unusual amount | 300 (`points.unusual-amount`) | the amount is more than `unusual-amount-multiple` (5) times the debtor's 30-day mean, with at least 3 payments to compare |
| new creditor | 200 (`points.new-creditor`) | no payment from this debtor to this creditor in 90 days, and the amount is at least `new-creditor-amount` (1000) |
| high-risk corridor | 250 (`points.high-risk-corridor`) | the creditor's country is in `high-risk-countries`, or the `DEBTOR-CREDITOR` country pair is in `high-risk-corridors` |
"""

from wit_world import exports
from wit_world.imports.types import Payment, Risk, RiskReason
from wit_world.imports.velocity import VelocityScope, figures

import payrules

HOUR = 3_600
DAY = 86_400


def score(payment: Payment) -> Risk:
    amount = payment.amount
    scale = amount.scale

    def shown(minor_units: int) -> str:
        return f"{payrules.format_minor_units(minor_units, scale)} {amount.currency}"

    number = payrules.config_number
    # The host refuses no window asked here; if it ever did, Err would end the rule as a
    # failure rather than score on missing data.
    debtor_hour = figures(VelocityScope.DEBTOR_ACCOUNT, HOUR).count
    debtor_day = figures(VelocityScope.DEBTOR_ACCOUNT, DAY).count
    debtor_30_days = figures(VelocityScope.DEBTOR_ACCOUNT, 30 * DAY)
    pair_day = figures(VelocityScope.DEBTOR_TO_CREDITOR, DAY).count
    pair_90_days = figures(VelocityScope.DEBTOR_TO_CREDITOR, 90 * DAY).count

    reasons = []
    if debtor_hour >= number("debtor-hourly-count", 5):
        reasons.append(RiskReason(
            "debtor-burst", number("points.debtor-burst", 250),
            f"the debtor account sent {debtor_hour} payments in the last hour"))
    if debtor_day >= number("debtor-daily-count", 20):
        reasons.append(RiskReason(
            "debtor-daily-velocity", number("points.debtor-daily", 150),
            f"the debtor account sent {debtor_day} payments in the last 24 hours"))
    if pair_day >= number("pair-daily-count", 3):
        reasons.append(RiskReason(
            "repeated-pair", number("points.pair-daily", 150),
            f"this debtor paid this creditor {pair_day} times in the last 24 hours"))
    count, total = debtor_30_days.count, debtor_30_days.sum_minor_units
    multiple = number("unusual-amount-multiple", 5)
    # amount > multiple × (total / count), in integers: amount × count > multiple × total.
    if count >= 3 and amount.minor_units * count > multiple * total:
        reasons.append(RiskReason(
            "unusual-amount", number("points.unusual-amount", 300),
            f"{shown(amount.minor_units)} is more than {multiple} times the debtor's "
            f"30-day mean of {shown(total // count)}"))
    new_creditor_at = payrules.config_amount("new-creditor-amount", scale)
    if new_creditor_at is None:
        new_creditor_at = 1000 * 10**scale
    if pair_90_days == 0 and amount.minor_units >= new_creditor_at:
        reasons.append(RiskReason(
            "new-creditor", number("points.new-creditor", 200),
            f"first payment from this debtor to this creditor in 90 days, and "
            f"{shown(amount.minor_units)} is at least {shown(new_creditor_at)}"))
    source = payrules.debtor_country(payment)
    target = payrules.creditor_country(payment)
    if source is not None and target is not None:
        if (target in payrules.config_list("high-risk-countries")
                or f"{source}-{target}" in payrules.config_list("high-risk-corridors")):
            reasons.append(RiskReason(
                "high-risk-corridor", number("points.high-risk-corridor", 250),
                f"payments from {source} to {target} are a high-risk corridor"))
    return payrules.risk(reasons)


class Fraud(exports.Fraud):
    def score(self, payment: Payment) -> Risk:
        return score(payment)
