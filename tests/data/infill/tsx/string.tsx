const label = "Clicked <CURSOR> times";
