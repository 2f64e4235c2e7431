"""A backtrader-style `notify_order` that reports order status changes.

Nothing here imports backtrader; `Order` mimics the parts of
`backtrader.Order` that the message uses. A live strategy calls
`notify_order` from its main loop, so the message is sent in the
background.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from herald_notify import Notifier  # noqa: E402


@dataclass
class ExecutionBits:
    price: float
    size: float


@dataclass
class Order:
    Submitted = 1
    Accepted = 2
    Completed = 4
    Canceled = 5
    Margin = 7
    Rejected = 8
    Status = ["Created", "Submitted", "Accepted", "Partial", "Completed",
              "Canceled", "Expired", "Margin", "Rejected"]

    ref: int
    status: int
    data_name: str
    buy: bool
    executed: ExecutionBits

    def getstatusname(self) -> str:
        return self.Status[self.status]

    def isbuy(self) -> bool:
        return self.buy


class DemoStrategy:
    """Stands in for a `backtrader.Strategy` subclass."""

    def __init__(self) -> None:
        self.notifier = Notifier(background=True)

    def notify_order(self, order: Order) -> None:
        if order.status in (Order.Submitted, Order.Accepted):
            return
        side = "BUY" if order.isbuy() else "SELL"
        if order.status == Order.Completed:
            text = "%s %s filled: %g @ %.2f (order %d)" % (
                side,
                order.data_name,
                order.executed.size,
                order.executed.price,
                order.ref,
            )
        else:
            text = "%s %s order %d ended as %s" % (
                side,
                order.data_name,
                order.ref,
                order.getstatusname(),
            )
        self.notifier.notify(text, title="backtrader order")

    def stop(self) -> None:
        self.notifier.close()


def main() -> None:
    strategy = DemoStrategy()
    strategy.notify_order(Order(1, Order.Accepted, "600519", True, ExecutionBits(0, 0)))
    strategy.notify_order(Order(1, Order.Completed, "600519", True, ExecutionBits(1688.0, 100)))
    strategy.notify_order(Order(2, Order.Margin, "000001", False, ExecutionBits(0, 0)))
    strategy.stop()


if __name__ == "__main__":
    main()
