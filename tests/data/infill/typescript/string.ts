const url: string = "https://example.com/<CURSOR>";
