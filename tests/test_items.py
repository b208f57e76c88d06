"""The items a node passes between its components: HotelItem, ImageRef."""

from __future__ import annotations

from hotelimages.items import HotelItem, ImageRef


def test_a_hotel_item_repr_stays_short_for_huge_listings():
    item = HotelItem(b"7", "7", "t", images=[ImageRef(str(n), f"http://cdn.example.com/{n}.jpg", "cover")
                                             for n in range(5000)])
    assert repr(item) == "HotelItem(hotel_id='7', images=5000, stored=0, failed=0, failure=None)"
