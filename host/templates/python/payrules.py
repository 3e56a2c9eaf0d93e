"""Helpers for payrules rules written in Python: exact money, the rule's configuration,
the parties' countries, rails by name, and a risk whose score is the sum of its reasons.

`payrules plugin build` writes this module beside the rule at every build, from the
payrules binary doing the build, so it always matches the host's contract. It is the
Python counterpart of the Rust `payrules-sdk`; the contract itself is the WIT in `wit/`.
"""

from decimal import Decimal

from wit_world.imports.types import AccountId_Iban, Agent, Party, Payment, Rail, Risk

# Imported when the component is built: a rule has no files, so nothing can be imported
# while it decides.
try:
    from wit_world.imports import config as _config
except ImportError:  # the manifest does not grant `config`
    _config = None
try:
    from wit_world.imports import log as _log
except ImportError:  # the manifest does not grant `log`
    _log = None


def format_minor_units(minor_units: int, scale: int) -> str:
    """`format_minor_units(123450, 2)` is "1234.50": exact, never through a float."""
    return f"{Decimal(minor_units).scaleb(-scale):.{scale}f}"


def display(money) -> str:
    """A `money` as a plain decimal with its currency, e.g. "1234.50 EUR"."""
    return f"{format_minor_units(money.minor_units, money.scale)} {money.currency}"


def parse_minor_units(text: str, scale: int):
    """A plain non-negative decimal ("25000", "1234.5") as whole minor units of a currency
    with `scale` minor digits; None if it is not one, or has more fraction digits."""
    whole, _, fraction = text.partition(".")
    if not (whole.isascii() and whole.isdigit()):
        return None
    if fraction and not (fraction.isascii() and fraction.isdigit()):
        return None
    significant = fraction.rstrip("0")
    if len(significant) > scale:
        return None
    return int(whole) * 10**scale + int(significant.ljust(scale, "0") or "0")


def config_get(key: str):
    """The manifest's `[config]` value at `key` as text (dotted keys reach nested tables);
    None if absent. Needs the `config` capability."""
    if _config is None:
        raise RuntimeError("the rule's manifest does not grant the config capability")
    return _config.get(key)


def config_number(key: str, default: int) -> int:
    """The whole number at `key`, or `default` if absent or not one."""
    text = config_get(key)
    if text is not None and text.isascii() and text.isdigit():
        return int(text)
    return default


def config_amount(key: str, scale: int):
    """The amount at `key` in minor units of a currency of `scale` digits, or None."""
    text = config_get(key)
    return None if text is None else parse_minor_units(text, scale)


def config_list(key: str) -> list:
    """The array at `key` as a list of strings (empty if absent)."""
    text = config_get(key)
    if text is None:
        return []
    return [item.strip() for item in text.split(",") if item.strip()]


def party_country(party: Party):
    """The party's address country, or else its IBAN's country."""
    if party.country is not None:
        return party.country
    if isinstance(party.account, AccountId_Iban):
        return party.account.value[:2]
    return None


def agent_country(agent: Agent):
    """The agent's country, or else the one in its BIC (characters 5-6)."""
    if agent.country is not None:
        return agent.country
    return agent.bic[4:6] if agent.bic else None


def debtor_country(payment: Payment):
    """The debtor's country: the debtor's own, else its IBAN's, else its agent's."""
    return party_country(payment.debtor) or agent_country(payment.debtor_agent)


def creditor_country(payment: Payment):
    """The creditor's country: the creditor's own, else its IBAN's, else its agent's."""
    return party_country(payment.creditor) or agent_country(payment.creditor_agent)


def named_parties(payment: Payment) -> list:
    """(role, party) for the debtor, the creditor and the ultimate parties there are."""
    parties = [("debtor", payment.debtor), ("creditor", payment.creditor)]
    if payment.ultimate_debtor is not None:
        parties.append(("ultimate debtor", payment.ultimate_debtor))
    if payment.ultimate_creditor is not None:
        parties.append(("ultimate creditor", payment.ultimate_creditor))
    return parties


def rail_name(rail: Rail) -> str:
    """The rail's name as manifests and decisions spell it ("sepa-instant")."""
    return rail.name.lower().replace("_", "-")


def rail_from_name(name: str):
    """The rail of that name ("sepa-instant"), or None."""
    return next((rail for rail in Rail if rail_name(rail) == name), None)


def risk(reasons: list) -> Risk:
    """A risk whose score is the sum of the reasons' points, capped at 1000, as the host
    requires; reasons of no points are dropped."""
    kept = [reason for reason in reasons if reason.points > 0]
    return Risk(min(sum(reason.points for reason in kept), 1000), kept)


def log_exception(error: BaseException) -> None:
    """Logs `error` at error level with where it was raised (file:line in function,
    innermost first), if the manifest grants `log`. The entry module calls it for an
    exception that ends the rule; `payrules plugin test` shows it under a failing case."""
    if _log is None:
        return
    frames = []
    trace = error.__traceback__
    while trace is not None:
        code = trace.tb_frame.f_code
        file = code.co_filename.rsplit("/", 1)[-1]
        frames.append(f"{file}:{trace.tb_lineno} in {code.co_name}")
        trace = trace.tb_next
    where = " < ".join(reversed(frames))
    _log.emit(_log.Level.ERROR, f"{type(error).__name__}: {error} (at {where})")
