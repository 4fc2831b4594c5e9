import math
from dataclasses import dataclass


def circle_area(radius: float) -> float:
    return math.pi * radius**2


@dataclass
class Shape:
    name: str
    sides: int

    def perimeter(self, length: float) -> float:
        return self.sides * length

    def describe(self, verbose: bool = False) -> str:
        <CURSOR>

    def scale(self, factor: float) -> "Shape":
        return Shape(self.name, self.sides)
