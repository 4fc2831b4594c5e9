auto path = std::string("/usr/<CURSOR>");
