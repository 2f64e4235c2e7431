"""A vn.py-style strategy that reports fills through Herald.

vn.py calls `on_trade` on the event engine's thread, so the strategy sends
in the background: a slow or stopped relay never delays the next event.
Nothing here imports vn.py; `TradeData` mimics the fields of
`vnpy.trader.object.TradeData` that the message uses.
"""

import logging
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from herald_notify import HeraldHandler, Notifier  # noqa: E402


@dataclass
class TradeData:
    symbol: str
    exchange: str
    direction: str
    offset: str
    price: float
    volume: float
    tradeid: str
    datetime: datetime


class DemoStrategy:
    """Stands in for a `CtaTemplate` subclass."""

    def __init__(self, strategy_name: str) -> None:
        self.strategy_name = strategy_name
        self.notifier = Notifier(background=True)
        self.logger = logging.getLogger("strategy." + strategy_name)
        # Errors of the strategy also reach the phone: a burst of 5, then at
        # most 10 a minute.
        self.logger.addHandler(HeraldHandler(title="Strategy error: " + strategy_name))

    def on_trade(self, trade: TradeData) -> None:
        text = "%s %s %s.%s %s @ %.2f, trade %s at %s" % (
            trade.direction,
            trade.offset,
            trade.symbol,
            trade.exchange,
            trade.volume,
            trade.price,
            trade.tradeid,
            trade.datetime.strftime("%H:%M:%S"),
        )
        self.notifier.notify(text, title="Fill: " + self.strategy_name)

    def on_stop(self) -> None:
        # Waits up to 2 s for queued messages; what is left is spooled.
        self.notifier.close()


def main() -> None:
    strategy = DemoStrategy("double_ma_600519")
    strategy.on_trade(
        TradeData(
            symbol="600519",
            exchange="SSE",
            direction="Long",
            offset="Open",
            price=1688.0,
            volume=100,
            tradeid="T0001",
            datetime=datetime.now(),
        )
    )
    try:
        raise ZeroDivisionError("position size with zero volatility")
    except ZeroDivisionError:
        strategy.logger.exception("risk check failed")
    strategy.on_stop()


if __name__ == "__main__":
    main()
